"""P2P trading through ``engine.p2p``: offers, trades, escrow, disputes, refusals.

Every test runs on fakeredis and on a real Valkey (``redis`` fixture). Money is
checked after each step: conservation per asset (credits in flight included) and
each seller's escrow == open sell offers + active trades.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from engine import accounts
from engine.p2p import P2P
from engine.p2p_rules import OfferChanges, fiat_amount, refusal
from engine.types import Balance, EngineError
from tests.p2p_helpers import COIN, USD, Ledger, dump_shard, new_desk, spec, stream_events
from workers.settler import Settler

T0 = 1_750_000_000_000
MIN = 60_000


@pytest.fixture
async def desk(redis: Any) -> tuple[P2P, Ledger]:
    desk, ledger = await new_desk(redis, ["sam", "bea", "carl", "fees"])
    await ledger.fund("sam", "BTC", 2 * COIN)  # the seller
    await ledger.fund("bea", "BTC", COIN // 10)  # the buyer (a little BTC of her own)
    await ledger.fund("carl", "BTC", COIN)
    return desk, ledger


async def settle(redis: Any) -> None:
    await Settler(redis, instance="tests", publish=False).drain()


async def refused(code: str, coro: Any) -> EngineError:
    with pytest.raises(EngineError) as err:
        await coro
    assert err.value.code == code, err.value
    return err.value


async def bal(redis: Any, user: str, asset: str = "BTC") -> Balance:
    return await accounts.balance(redis, user, asset)


# -- happy paths -------------------------------------------------------------------


async def test_sell_offer_trade_releases_to_the_buyer_exactly_once(desk):
    p2p, ledger = desk
    r = p2p.redis
    offer = await p2p.create_offer("sam", spec("sell", COIN, price=30_000_10), now=T0)
    assert offer.status == "OPEN" and (offer.amount, offer.locked) == (COIN, 0)
    assert await bal(r, "sam") == Balance("BTC", COIN, 0, COIN)
    await ledger.check(p2p)

    trade = await p2p.take_offer("bea", offer.id, COIN // 4, now=T0 + 1)
    assert (trade.status, trade.seller, trade.buyer, trade.amount) == (
        "PENDING", "sam", "bea", COIN // 4
    )  # fmt: skip
    assert trade.fiat_amount == 7_500_03  # 7500.025 USD, rounded up to the cent
    assert trade.expires_ts == T0 + 1 + 15 * MIN
    offer = await p2p.get_offer(offer.id)
    assert (offer.amount, offer.locked) == (3 * COIN // 4, COIN // 4)
    assert await bal(r, "sam") == Balance("BTC", COIN, 0, COIN)  # still all in escrow
    await ledger.check(p2p)

    trade = await p2p.mark_paid("bea", trade.id, now=T0 + 2)
    assert trade.status == "PAID" and trade.paid_ts == T0 + 2
    trade = await p2p.confirm_release("sam", trade.id, now=T0 + 3)
    assert trade.status == "RELEASED"
    assert await bal(r, "sam") == Balance("BTC", COIN, 0, 3 * COIN // 4)
    assert await bal(r, "bea") == Balance("BTC", COIN // 10, 0, 0)  # credit in flight
    await ledger.check(p2p)

    await settle(r)
    assert await bal(r, "bea") == Balance("BTC", COIN // 10 + COIN // 4, 0, 0)
    await ledger.check(p2p)
    again = await p2p.confirm_release("sam", trade.id, now=T0 + 4)  # a retry: nothing twice
    assert again == trade
    await settle(r)
    assert await bal(r, "bea") == Balance("BTC", COIN // 10 + COIN // 4, 0, 0)
    offer = await p2p.get_offer(offer.id)
    assert (offer.amount, offer.locked, offer.filled) == (3 * COIN // 4, 0, COIN // 4)
    await ledger.check(p2p)


async def test_buy_offer_escrows_from_the_seller_who_takes_it(desk):
    p2p, ledger = desk
    r = p2p.redis
    before = await bal(r, "bea")
    offer = await p2p.create_offer("bea", spec("buy", COIN, price=29_000 * USD), now=T0)
    assert await bal(r, "bea") == before  # a buy offer escrows nothing
    trade = await p2p.take_offer("sam", offer.id, COIN // 2, now=T0 + 1)
    assert (trade.seller, trade.buyer, trade.offer_side) == ("sam", "bea", "buy")
    assert await bal(r, "sam") == Balance("BTC", 3 * COIN // 2, 0, COIN // 2)
    offer = await p2p.get_offer(offer.id)
    assert (offer.amount, offer.locked) == (COIN // 2, COIN // 2)
    await ledger.check(p2p)

    await p2p.mark_paid("bea", trade.id, now=T0 + 2)
    await p2p.confirm_release("sam", trade.id, now=T0 + 3)
    await settle(r)
    assert await bal(r, "sam") == Balance("BTC", 3 * COIN // 2, 0, 0)
    assert await bal(r, "bea") == Balance("BTC", COIN // 10 + COIN // 2, 0, 0)
    offer = await p2p.get_offer(offer.id)
    assert (offer.amount, offer.locked, offer.filled) == (COIN // 2, 0, COIN // 2)
    assert [t.id for t in await p2p.my_trades("bea")] == [trade.id]
    assert [t.id for t in await p2p.my_trades("sam")] == [trade.id]
    await ledger.check(p2p)


async def test_buyer_cancel_returns_the_amount_to_the_offer_or_to_the_seller(desk):
    p2p, ledger = desk
    r = p2p.redis
    offer = await p2p.create_offer("sam", spec("sell", COIN), now=T0)
    t1 = await p2p.take_offer("bea", offer.id, COIN // 4, now=T0)
    t2 = await p2p.take_offer("carl", offer.id, COIN // 4, now=T0)
    assert (await p2p.cancel_trade("bea", t1.id, now=T0 + 1)).status == "CANCELLED"
    assert (await p2p.get_offer(offer.id)).amount == 3 * COIN // 4  # back to the offer
    closed = await p2p.close_offer("sam", offer.id, now=T0 + 2)
    assert (closed.status, closed.amount, closed.locked) == ("CLOSED", 0, COIN // 4)
    assert await bal(r, "sam") == Balance("BTC", COIN + 3 * COIN // 4, 0, COIN // 4)
    await ledger.check(p2p)
    assert (await p2p.cancel_trade("carl", t2.id, now=T0 + 3)).status == "CANCELLED"
    assert await bal(r, "sam") == Balance("BTC", 2 * COIN, 0, 0)  # offer closed: to available
    assert (await p2p.get_offer(offer.id)).locked == 0
    await ledger.check(p2p)


async def test_unpaid_trade_expires_after_its_window_once(desk):
    p2p, ledger = desk
    offer = await p2p.create_offer("sam", spec("sell", COIN, window=10), now=T0)
    trade = await p2p.take_offer("bea", offer.id, COIN // 4, now=T0)
    early = await p2p.expire_trade(trade.id, now=T0 + 10 * MIN - 1)
    assert early.outcome == "not_due" and early.trade and early.trade.status == "PENDING"
    await refused("INVALID_PARAM", p2p.mark_paid("bea", trade.id, now=T0 + 10 * MIN))
    done = await p2p.expire_trade(trade.id, now=T0 + 10 * MIN)
    assert done.outcome == "expired" and done.trade and done.trade.status == "EXPIRED"
    assert (await p2p.expire_trade(trade.id, now=T0 + 11 * MIN)).outcome == "replay"
    assert (await p2p.get_offer(offer.id)).amount == COIN
    await ledger.check(p2p)
    paid = await p2p.take_offer("bea", offer.id, COIN // 4, now=T0)
    await p2p.mark_paid("bea", paid.id, now=T0 + 1)
    assert (await p2p.expire_trade(paid.id, now=T0 + 20 * MIN)).outcome == "not_pending"
    assert (await p2p.get_trade("bea", paid.id)).status == "PAID"


async def test_sweep_expires_due_trades(desk):
    p2p, ledger = desk
    offer = await p2p.create_offer("sam", spec("sell", COIN, window=1), now=T0)
    due = await p2p.take_offer("bea", offer.id, COIN // 4, now=T0)
    later = await p2p.take_offer("carl", offer.id, COIN // 4, now=T0 + MIN)
    result = await p2p.sweep(now=T0 + MIN + 1)
    assert result.expired == [due.id]
    assert (await p2p.get_trade("carl", later.id)).status == "PENDING"
    assert (await p2p.sweep(now=T0 + MIN + 2)).expired == []
    await ledger.check(p2p)


async def test_disputes_are_resolved_by_an_admin_to_release_or_refund(desk):
    p2p, ledger = desk
    r = p2p.redis
    offer = await p2p.create_offer("sam", spec("sell", COIN), now=T0)
    t1 = await p2p.take_offer("bea", offer.id, COIN // 4, now=T0)
    t2 = await p2p.take_offer("carl", offer.id, COIN // 4, now=T0)
    for t in (t1, t2):
        await p2p.mark_paid(t.buyer, t.id, now=T0 + 1)
    await refused("INVALID_PARAM", p2p.open_dispute("bea", t1.id, "   "))
    d1 = await p2p.open_dispute("bea", t1.id, "paid, seller silent", now=T0 + 2)
    assert (d1.status, d1.dispute_by, d1.dispute_reason) == (
        "DISPUTED",
        "bea",
        "paid, seller silent",
    )
    await p2p.open_dispute("sam", t2.id, "no money arrived", now=T0 + 2)
    assert [t.id for t in await p2p.disputes()] == sorted([t1.id, t2.id])
    await refused("INVALID_PARAM", p2p.confirm_release("sam", t1.id))  # disputed: admin only
    await refused("FORBIDDEN", p2p.resolve_dispute("bea", t1.id, "release"))  # a party
    released = await p2p.resolve_dispute("ada", t1.id, "release", now=T0 + 3)
    assert (released.status, released.resolution, released.resolved_by) == (
        "RELEASED", "release", "ada"
    )  # fmt: skip
    refunded = await p2p.resolve_dispute("ada", t2.id, "refund", now=T0 + 3)
    assert (refunded.status, refunded.resolution) == ("REFUNDED", "refund")
    assert await p2p.disputes() == []
    await settle(r)
    assert await bal(r, "bea") == Balance("BTC", COIN // 10 + COIN // 4, 0, 0)
    assert await bal(r, "carl") == Balance("BTC", COIN, 0, 0)
    assert (await p2p.get_offer(offer.id)).amount == 3 * COIN // 4  # refund: back to the offer
    await ledger.check(p2p)


# -- offers --------------------------------------------------------------------------


async def test_offer_edits_escrow_more_or_release_and_pause_blocks_takes(desk):
    p2p, ledger = desk
    r = p2p.redis
    offer = await p2p.create_offer("sam", spec("sell", COIN), now=T0)
    up = await p2p.update_offer("sam", offer.id, OfferChanges(amount=COIN + COIN // 2))
    assert up.amount == COIN + COIN // 2
    assert await bal(r, "sam") == Balance("BTC", COIN // 2, 0, COIN + COIN // 2)
    before = await dump_shard(r, "sam")
    await refused(
        "INSUFFICIENT_FUNDS", p2p.update_offer("sam", offer.id, OfferChanges(amount=3 * COIN))
    )
    await refused("INVALID_PARAM", p2p.update_offer("sam", offer.id, OfferChanges(min_amount=COIN)))
    assert await dump_shard(r, "sam") == before
    down = await p2p.update_offer(
        "sam", offer.id, OfferChanges(amount=COIN // 4, price=31_000 * USD, payment_window=30)
    )
    assert (down.amount, down.price, down.payment_window) == (COIN // 4, 31_000 * USD, 30)
    assert await bal(r, "sam") == Balance("BTC", 2 * COIN - COIN // 4, 0, COIN // 4)
    await ledger.check(p2p)

    paused = await p2p.update_offer("sam", offer.id, OfferChanges(status="PAUSED"))
    assert paused.status == "PAUSED" and await p2p.list_offers() == []
    await refused("INVALID_PARAM", p2p.take_offer("bea", offer.id, COIN // 10))
    resumed = await p2p.update_offer("sam", offer.id, OfferChanges(status="OPEN"))
    assert [o.id for o in await p2p.list_offers()] == [resumed.id]
    closed = await p2p.close_offer("sam", offer.id)
    assert await bal(r, "sam") == Balance("BTC", 2 * COIN, 0, 0)
    assert await p2p.close_offer("sam", offer.id) == closed  # replay
    await refused("INVALID_PARAM", p2p.update_offer("sam", offer.id, OfferChanges(amount=COIN)))
    await refused("UNKNOWN_ORDER", p2p.close_offer("bea", offer.id))  # not hers
    assert await p2p.list_offers() == []
    await ledger.check(p2p)


async def test_listing_filters_and_best_price_first(desk):
    p2p, _ = desk
    a = await p2p.create_offer("sam", spec("sell", COIN // 2, price=30_100 * USD))
    b = await p2p.create_offer("carl", spec("sell", COIN // 2, price=30_000 * USD))
    c = await p2p.create_offer("sam", spec("sell", COIN // 2, price=27_000 * 100, fiat="EUR"))
    d = await p2p.create_offer("bea", spec("buy", COIN, price=29_000 * USD))
    e = await p2p.create_offer("carl", spec("buy", COIN, price=29_500 * USD))
    ids = [o.id for o in await p2p.list_offers(side="sell", asset="BTC", fiat="USD")]
    assert ids == [b.id, a.id]
    assert [o.id for o in await p2p.list_offers(side="buy")] == [e.id, d.id]
    assert [o.id for o in await p2p.list_offers(fiat="EUR")] == [c.id]
    assert await p2p.list_offers(asset="ETH") == []
    assert len(await p2p.list_offers(limit=2)) == 2
    await p2p.take_offer("bea", b.id, COIN // 2)  # nothing left: hidden
    assert [o.id for o in await p2p.list_offers(side="sell", fiat="USD")] == [a.id]
    assert {o.id for o in await p2p.my_offers("sam")} == {a.id, c.id}


# -- refusals ------------------------------------------------------------------------


async def test_offer_and_take_refusals_change_nothing(desk):
    p2p, ledger = desk
    r = p2p.redis
    await refused("INSUFFICIENT_FUNDS", p2p.create_offer("sam", spec("sell", 3 * COIN)))
    await refused(
        "INVALID_PARAM", p2p.create_offer("sam", spec(min_amount=COIN, max_amount=COIN // 2))
    )
    await refused("INVALID_PARAM", p2p.create_offer("sam", spec(window=0)))
    await refused("INVALID_PARAM", p2p.create_offer("sam", spec(fiat="usd")))
    await refused("INVALID_PARAM", p2p.create_offer("sam", spec(methods=())))
    await refused("INVALID_PARAM", p2p.create_offer("sam", spec(methods=("x" * 51,))))
    await refused("INVALID_PARAM", p2p.create_offer("sam", spec(asset="DOGE")))
    offer = await p2p.create_offer(
        "sam", spec("sell", COIN, min_amount=COIN // 10, max_amount=COIN // 2)
    )
    before = {u: await dump_shard(r, u) for u in ("sam", "bea")}
    await refused("INVALID_PARAM", p2p.take_offer("sam", offer.id, COIN // 4))  # own offer
    await refused("INVALID_PARAM", p2p.take_offer("bea", offer.id, COIN // 10 - 1))  # below min
    await refused("INVALID_PARAM", p2p.take_offer("bea", offer.id, COIN // 2 + 1))  # above max
    await refused("INVALID_PARAM", p2p.take_offer("bea", offer.id, 0))
    await refused(
        "INVALID_PARAM", p2p.take_offer("bea", offer.id, COIN // 4, price=offer.price - 1)
    )
    await refused("UNKNOWN_ORDER", p2p.take_offer("bea", "12345", COIN // 4))
    await refused("UNKNOWN_ORDER", p2p.take_offer("bea", "not-an-id", COIN // 4))
    after = {u: await dump_shard(r, u) for u in ("sam", "bea")}
    assert after == before
    await p2p.take_offer("bea", offer.id, COIN // 2)
    await p2p.take_offer("carl", offer.id, COIN // 2)
    await refused("INVALID_PARAM", p2p.take_offer("bea", offer.id, COIN // 10))  # nothing left
    await ledger.check(p2p)


async def test_taking_a_buy_offer_without_funds_returns_the_reservation(desk):
    p2p, ledger = desk
    offer = await p2p.create_offer("sam", spec("buy", 5 * COIN, max_amount=3 * COIN))
    before = (await accounts.balances(p2p.redis, "bea"), await stream_events(p2p.redis, "bea"))
    await refused("INSUFFICIENT_FUNDS", p2p.take_offer("bea", offer.id, COIN, request_id="t-1"))
    assert (await p2p.get_offer(offer.id)).amount == 5 * COIN
    after = (await accounts.balances(p2p.redis, "bea"), await stream_events(p2p.redis, "bea"))
    assert after == before
    # a retry of the refused request is refused the same way, and reserves nothing
    await refused("INSUFFICIENT_FUNDS", p2p.take_offer("bea", offer.id, COIN, request_id="t-1"))
    assert (await p2p.get_offer(offer.id)).amount == 5 * COIN
    assert await p2p.my_trades("bea") == [] and await p2p.my_trades("sam") == []
    await ledger.check(p2p)


async def test_wrong_party_wrong_state_and_strangers_are_refused(desk):
    p2p, ledger = desk
    r = p2p.redis
    offer = await p2p.create_offer("sam", spec("sell", COIN), now=T0)
    trade = await p2p.take_offer("bea", offer.id, COIN // 4, now=T0)
    snapshot = await dump_shard(r, "sam")
    err = await refused("FORBIDDEN", p2p.mark_paid("sam", trade.id, now=T0 + 1))
    assert err.message == "only the buyer may mark this trade paid"
    await refused("FORBIDDEN", p2p.cancel_trade("sam", trade.id, now=T0 + 1))
    await refused("FORBIDDEN", p2p.confirm_release("bea", trade.id, now=T0 + 1))
    await refused("INVALID_PARAM", p2p.open_dispute("bea", trade.id, "too early", now=T0 + 1))
    await refused("INVALID_PARAM", p2p.resolve_dispute("ada", trade.id, "refund", now=T0 + 1))
    for call in (p2p.mark_paid, p2p.cancel_trade, p2p.confirm_release):
        await refused("UNKNOWN_ORDER", call("carl", trade.id, now=T0 + 1))
    await refused("UNKNOWN_ORDER", p2p.get_trade("carl", trade.id))
    await refused("UNKNOWN_ORDER", p2p.mark_paid("bea", "999", now=T0 + 1))
    assert await dump_shard(r, "sam") == snapshot
    await p2p.mark_paid("bea", trade.id, now=T0 + 2)
    await refused("INVALID_PARAM", p2p.cancel_trade("bea", trade.id, now=T0 + 3))
    await p2p.confirm_release("sam", trade.id, now=T0 + 3)
    await refused("INVALID_PARAM", p2p.open_dispute("bea", trade.id, "late", now=T0 + 4))
    await refused("INVALID_PARAM", p2p.cancel_trade("bea", trade.id, now=T0 + 4))
    await ledger.check(p2p)


STATES_SETUP = {
    "PENDING": [],
    "PAID": [("paid", "bea")],
    "DISPUTED": [("paid", "bea"), ("dispute", "sam")],
}
CALLERS = {"buyer": "bea", "seller": "sam", "stranger": "carl", "admin": "ada"}


async def _call(p2p: P2P, action: str, who: str, tid: str, now: int) -> Any:
    user = CALLERS[who]
    if action == "paid":
        return await p2p.mark_paid(user, tid, now=now)
    if action == "release":
        return await p2p.confirm_release(user, tid, now=now)
    if action == "cancel":
        return await p2p.cancel_trade(user, tid, now=now)
    if action == "dispute":
        return await p2p.open_dispute(user, tid, "reason", now=now)
    return await p2p.resolve_dispute(user, tid, action.removeprefix("resolve_"), now=now)  # type: ignore[arg-type]


async def test_every_move_follows_the_rules_table(desk):
    """Each state x action x caller through the public calls agrees with RULES."""
    p2p, ledger = desk
    offer = await p2p.create_offer("sam", spec("sell", 2 * COIN, min_amount=1, max_amount=COIN))
    for state, steps in STATES_SETUP.items():
        for action in ("paid", "release", "cancel", "dispute", "resolve_release", "resolve_refund"):
            for who in CALLERS:
                trade = await p2p.take_offer("bea", offer.id, 1000, now=T0)
                for step, actor in steps:
                    await _call(
                        p2p, step, "buyer" if actor == "bea" else "seller", trade.id, T0 + 1
                    )
                # the user calls act with role user; resolve_dispute with role admin
                party: str | None
                if who in ("buyer", "seller"):
                    party = who
                elif action.startswith("resolve_"):
                    party = "admin"
                else:
                    party = None
                expected = refusal(action, state, party)
                if expected == "INVALID_PARAM" and steps and steps[-1][0] == action:
                    expected = None  # the same move again: an idempotent replay
                if expected is None:
                    result = await _call(p2p, action, who, trade.id, T0 + 2)
                    assert result.last_action == action, (state, action, who)
                else:
                    await refused(expected, _call(p2p, action, who, trade.id, T0 + 2))
                    assert (await p2p.get_trade("sam", trade.id)).status == state
            # the system may only expire, and only a PENDING trade
            trade = await p2p.take_offer("bea", offer.id, 1000, now=T0)
            for step, actor in steps:
                await _call(p2p, step, "buyer" if actor == "bea" else "seller", trade.id, T0 + 1)
            outcome = (await p2p.expire_trade(trade.id, now=T0 + 10**9)).outcome
            assert outcome == (
                "expired" if refusal("expire", state, "system") is None else "not_pending"
            )
    await ledger.check(p2p)


# -- idempotency ---------------------------------------------------------------------


async def test_request_ids_make_retries_change_nothing_twice(desk):
    p2p, ledger = desk
    r = p2p.redis
    o1 = await p2p.create_offer("sam", spec("sell", COIN), request_id="offer-1")
    o2 = await p2p.create_offer("sam", spec("sell", COIN), request_id="offer-1")
    assert o1 == o2 and await bal(r, "sam") == Balance("BTC", COIN, 0, COIN)
    t1 = await p2p.take_offer("bea", o1.id, COIN // 4, request_id="take-1")
    t2 = await p2p.take_offer("bea", o1.id, COIN // 4, request_id="take-1")
    assert t1 == t2 and (await p2p.get_offer(o1.id)).amount == 3 * COIN // 4
    assert [t.id for t in await p2p.my_trades("bea")] == [t1.id]
    await refused("INVALID_PARAM", p2p.cancel_trade("bea", t1.id, request_id="take-1"))
    await p2p.mark_paid("bea", t1.id, request_id="pay-1")
    assert (await p2p.mark_paid("bea", t1.id, request_id="pay-1")).status == "PAID"
    e1 = await p2p.update_offer("sam", o1.id, OfferChanges(amount=COIN // 2), request_id="ed-1")
    e2 = await p2p.update_offer("sam", o1.id, OfferChanges(amount=COIN), request_id="ed-1")
    assert e1 == e2 and (await p2p.get_offer(o1.id)).amount == COIN // 2
    m1 = await p2p.post_message("bea", t1.id, "sent", request_id="m-1")
    m2 = await p2p.post_message("bea", t1.id, "sent", request_id="m-1")
    assert m1 == m2 and len(await p2p.messages("bea", t1.id)) == 1
    # buy offers: the reservation and the trade are both taken once
    buy = await p2p.create_offer("bea", spec("buy", COIN))
    b1 = await p2p.take_offer("carl", buy.id, COIN // 4, request_id="take-1")
    b2 = await p2p.take_offer("carl", buy.id, COIN // 4, request_id="take-1")
    assert b1 == b2 and (await p2p.get_offer(buy.id)).amount == 3 * COIN // 4
    for other in (p2p.take_offer("carl", buy.id, COIN // 8, request_id="take-1"),
                  p2p.take_offer("bea", o1.id, COIN // 8, request_id="take-1")):  # fmt: skip
        await refused("INVALID_PARAM", other)  # same request id, other amount
    assert (await p2p.get_offer(buy.id)).amount == 3 * COIN // 4
    assert await bal(r, "carl") == Balance("BTC", 3 * COIN // 4, 0, COIN // 4)
    await ledger.check(p2p)


async def test_a_take_cut_off_between_its_two_shards_is_repaired_by_the_sweep(desk, monkeypatch):
    p2p, ledger = desk
    offer = await p2p.create_offer("bea", spec("buy", COIN), now=T0)
    real = p2p._fcall_bal  # p2p_open goes through it (with the balance read)

    async def lost_open(fn: str, *args: Any) -> Any:
        if fn == "p2p_open":
            raise ConnectionError("connection lost")
        return await real(fn, *args)

    monkeypatch.setattr(p2p, "_fcall_bal", lost_open)
    with pytest.raises(ConnectionError):
        await p2p.take_offer("sam", offer.id, COIN // 4, request_id="cut", now=T0)
    monkeypatch.setattr(p2p, "_fcall_bal", real)
    assert (await p2p.get_offer(offer.id)).amount == 3 * COIN // 4  # reserved, no trade
    assert (await p2p.sweep(now=T0 + 1000)).aborted == []  # too recent
    result = await p2p.sweep(now=now_plus_grace())
    assert len(result.aborted) == 1
    assert (await p2p.get_offer(offer.id)).amount == COIN
    # the late retry finds its trade id tombstoned: no trade, no escrow
    await refused("INVALID_PARAM", p2p.take_offer("sam", offer.id, COIN // 4, request_id="cut"))
    assert await bal(p2p.redis, "sam") == Balance("BTC", 2 * COIN, 0, 0)
    assert (await p2p.get_offer(offer.id)).amount == COIN
    await ledger.check(p2p)


def now_plus_grace() -> int:
    from engine.p2p import RESERVE_GRACE_MS, now_ms

    return now_ms() + RESERVE_GRACE_MS + 1


# -- messages and notifications ------------------------------------------------------


async def test_message_thread_between_the_parties_and_admins_in_a_dispute(desk):
    p2p, _ = desk
    offer = await p2p.create_offer("sam", spec("sell", COIN))
    trade = await p2p.take_offer("bea", offer.id, COIN // 4)
    await p2p.post_message("bea", trade.id, "Hello, sending now")
    await p2p.post_message("sam", trade.id, 'ok "quotes" and\nnewline é')
    await refused("UNKNOWN_ORDER", p2p.post_message("carl", trade.id, "hi"))
    await refused("UNKNOWN_ORDER", p2p.messages("carl", trade.id))
    await refused("FORBIDDEN", p2p.messages("ada", trade.id, role="admin"))
    await refused("FORBIDDEN", p2p.post_message("ada", trade.id, "hi", role="admin"))
    await refused("INVALID_PARAM", p2p.post_message("bea", trade.id, "x" * 501))
    await refused("INVALID_PARAM", p2p.post_message("bea", trade.id, "  "))
    msgs = await p2p.messages("sam", trade.id)
    assert [(m.n, m.sender, m.role, m.body) for m in msgs] == [
        (1, "bea", "buyer", "Hello, sending now"),
        (2, "sam", "seller", 'ok "quotes" and\nnewline é'),
    ]
    await p2p.mark_paid("bea", trade.id)
    await p2p.open_dispute("sam", trade.id, "nothing arrived")
    await p2p.post_message("ada", trade.id, "Please upload the receipt", role="admin")
    admin_view = await p2p.messages("ada", trade.id, role="admin")
    assert [m.role for m in admin_view] == ["buyer", "seller", "admin"]
    await p2p.resolve_dispute("ada", trade.id, "refund")
    await refused("INVALID_PARAM", p2p.post_message("bea", trade.id, "too late"))
    assert len(await p2p.messages("ada", trade.id, role="admin")) == 3


async def test_thread_length_is_capped(desk):
    p2p, _ = desk
    offer = await p2p.create_offer("sam", spec("sell", COIN))
    trade = await p2p.take_offer("bea", offer.id, COIN // 4)
    p2p.notifications = False
    for i in range(200):
        await p2p.post_message("bea" if i % 2 else "sam", trade.id, f"m{i}")
    await refused("INVALID_PARAM", p2p.post_message("bea", trade.id, "one more"))


async def test_both_parties_are_notified_of_every_transition(desk):
    from engine import notify

    p2p, _ = desk
    r = p2p.redis
    pubsub = r.pubsub()
    await pubsub.subscribe(notify.channel("bea"))
    offer = await p2p.create_offer("sam", spec("sell", COIN))
    trade = await p2p.take_offer("bea", offer.id, COIN // 4)
    await p2p.mark_paid("bea", trade.id)
    await p2p.mark_paid("bea", trade.id)  # replay: no second notice
    await p2p.open_dispute("bea", trade.id, "slow seller")
    await p2p.resolve_dispute("ada", trade.id, "release")
    kinds = ["p2p.trade_opened", "p2p.trade_paid", "p2p.trade_disputed", "p2p.dispute_resolved"]
    for user in ("sam", "bea"):
        notes = await notify.inbox(r, user)
        assert [n.kind for n in notes] == kinds[::-1]
        assert {n.ref for n in notes} == {trade.id} and len({n.id for n in notes}) == 4
    pushes = []
    for _ in range(50):
        msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.05)
        if msg:
            import orjson

            pushes.append(orjson.loads(msg["data"]))
        if len(pushes) == 4:
            break
    await pubsub.aclose()
    assert [p["kind"] for p in pushes] == kinds
    assert set(pushes[0]) == {"channel", "id", "kind", "message", "ref", "ts"}
    assert pushes[0]["channel"] == "notifications" and "7500.00 USD" in pushes[0]["message"]


async def test_inbox_is_capped_newest_first_and_dedup_notifies_once(redis):
    from engine import notify

    for i in range(notify.INBOX_CAP + 10):
        await notify.notify(redis, "u1", "test", f"n{i}", ref="r")
    notes = await notify.inbox(redis, "u1", limit=1000)
    assert len(notes) == notify.INBOX_CAP
    assert notes[0].message == f"n{notify.INBOX_CAP + 9}" and notes[-1].message == "n10"
    assert await notify.notify(redis, "u2", "k", "once", dedup="x") is not None
    assert await notify.notify(redis, "u2", "k", "once", dedup="x") is None
    assert [n.message for n in await notify.inbox(redis, "u2")] == ["once"]


# -- persistence events ----------------------------------------------------------------

LEGS = {  # asset legs of ledger events: (available, held, escrow) signs
    "deposit": (1, 0, 0),
    "escrow": (-1, 0, 1),
    "unescrow": (1, 0, -1),
    "transfer_out": (-1, 0, 0),
    "transfer_in": (1, 0, 0),
}


async def test_account_stream_carries_balance_legs_and_snapshots_for_the_drain(desk):
    p2p, _ = desk
    r = p2p.redis
    sell = await p2p.create_offer("sam", spec("sell", COIN))
    buy = await p2p.create_offer("sam", spec("buy", COIN))
    t1 = await p2p.take_offer("bea", sell.id, COIN // 4)
    t2 = await p2p.take_offer("carl", sell.id, COIN // 4)
    t3 = await p2p.take_offer("carl", buy.id, COIN // 4)
    await p2p.confirm_release("sam", t1.id)
    await p2p.cancel_trade("carl", t2.id)
    await p2p.mark_paid("sam", t3.id)
    await p2p.post_message("sam", t3.id, "done")
    await p2p.update_offer("sam", sell.id, OfferChanges(amount=COIN // 3))
    await p2p.close_offer("sam", sell.id)
    await settle(r)
    for user in ("sam", "bea", "carl"):
        totals: dict[str, list[int]] = {}
        for ev in await stream_events(r, user, set(LEGS)):
            legs = totals.setdefault(ev["asset"], [0, 0, 0])
            for i, sign in enumerate(LEGS[ev["e"]]):
                legs[i] += sign * ev["amount"]
        for b in await accounts.balances(r, user):
            assert totals[b.asset] == [b.available, b.held, b.escrow], user
    trades = [ev for ev in await stream_events(r, "sam", {"p2p_trade"}) if ev["id"] == t1.id]
    assert [ev["status"] for ev in trades] == ["PENDING", "RELEASED"]
    assert [ev["v"] for ev in trades] == [1, 2] and trades[-1]["fiat_amount"] == t1.fiat_amount
    carl_trades = await stream_events(r, "carl", {"p2p_trade", "p2p_msg"})
    assert [ev["e"] for ev in carl_trades] == ["p2p_trade", "p2p_trade", "p2p_msg"]
    assert carl_trades[-1]["body"] == "done"
    offers = [ev for ev in await stream_events(r, "sam", {"p2p_offer"}) if ev["id"] == buy.id]
    assert offers[-1]["locked"] == COIN // 4 and offers[-1]["methods"] == ["SEPA transfer"]
    assert [ev["id"] for ev in await stream_events(r, "sam", {"transfer_out"})] == [f"p2p:{t1.id}"]


def test_fiat_amount_rounds_up_to_the_cent_exactly():
    assert fiat_amount(30_000_10, COIN // 4, 8) == 7_500_03
    assert fiat_amount(1, 1, 8) == 1  # a fraction of a cent is a cent
    assert fiat_amount(99_999_999_999_99, 10**17, 8) == 99_999_999_999_99 * 10**9


@pytest.mark.parametrize(("window", "says"), [(1, "within 1 minute,"), (15, "within 15 minutes,")])
def test_the_buyers_take_notice_names_the_payment_window(window: int, says: str) -> None:
    from engine.p2p_rules import Trade, notices

    t = Trade(
        id="t1", offer_id="o1", offer_side="sell", seller="s", buyer="b", asset="BTC",
        fiat="USD", price=3_000_000, amount=COIN, fiat_amount=3_000_000,
        payment_methods=("SEPA",), payment_window=window, status="PENDING", last_action="take",
        created_ts=1, updated_ts=1, expires_ts=2, paid_ts=0, dispute_by="", dispute_reason="",
        dispute_ts=0, resolution="", resolved_by="", version=1,
    )  # fmt: skip
    (buyer,) = [message for user, _, message in notices(t, 8) if user == "b"]
    assert says in buyer


def test_notices_name_users_as_the_page_does() -> None:
    # "3 is buying" / "dispute opened by 3" read as a count, not a user
    from engine.p2p_rules import Trade, notices

    t = Trade(
        id="t1", offer_id="o1", offer_side="sell", seller="7", buyer="3", asset="BTC",
        fiat="USD", price=3_000_000, amount=COIN, fiat_amount=3_000_000,
        payment_methods=("SEPA",), payment_window=15, status="PENDING", last_action="take",
        created_ts=1, updated_ts=1, expires_ts=2, paid_ts=0, dispute_by="", dispute_reason="",
        dispute_ts=0, resolution="", resolved_by="", version=1,
    )  # fmt: skip
    (seller,) = [message for user, _, message in notices(t, 8) if user == "7"]
    assert "user #3 is buying 1.00000000 BTC" in seller
    disputed = replace(t, status="DISPUTED", last_action="dispute", dispute_by="3",
                       dispute_reason="paid, no release")  # fmt: skip
    for _, _, message in notices(disputed, 8):
        assert message.endswith("dispute opened by the buyer: paid, no release")
