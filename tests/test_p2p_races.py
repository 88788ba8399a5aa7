"""Seeded races on one P2P trade (real Valkey, one connection per actor).

Each race opens a trade (from a sell offer or a buy offer), maybe marks it paid,
then fires release (seller), cancel (buyer), expiry (the job) and dispute (a random
party) at once, sometimes twice each and with a settler pass in the middle; a
disputed trade then gets two admins resolving it differently at once. Exactly one
move wins each race, the escrow is paid out or returned once, and after every step
money is conserved (credits in flight included) and the seller's escrow is exactly
what the open sell offer and the live trade hold.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aredis

from engine import accounts
from engine.functions import ensure_loaded
from engine.p2p import P2P
from engine.p2p_rules import ACTIVE, RETURNED, Trade
from engine.types import EngineError
from tests.p2p_helpers import COIN, new_desk, spec
from workers.settler import Settler

SELLER, BUYER, ADMINS = "sam", "bea", ("ada", "alan")
WINDOW_MS = 15 * 60_000
T0 = 1_750_000_000_000


class Arena:
    """Desks over separate connections: seller, buyer, the expiry job, two admins."""

    def __init__(self, url: str) -> None:
        self.clients = [aredis.Redis.from_url(url) for _ in range(6)]
        self.seller, self.buyer, self.job, self.admin1, self.admin2, self.main = (
            P2P(c) for c in self.clients
        )
        self.settler = Settler(self.clients[5], publish=False)

    async def close(self) -> None:
        for c in self.clients:
            await c.aclose()


@pytest.fixture
async def arena(valkey_url: str) -> AsyncIterator[Arena]:
    setup = aredis.Redis.from_url(valkey_url)
    await setup.flushall()
    await ensure_loaded(setup)
    await setup.aclose()
    arena = Arena(valkey_url)
    try:
        yield arena
    finally:
        await arena.close()


async def _try(coro: Any) -> Any:
    try:
        return await coro
    except EngineError as exc:
        assert exc.code in ("INVALID_PARAM", "FORBIDDEN"), exc
        return exc


async def run_races(arena: Arena, n: int, seed: int) -> None:
    rng = random.Random(seed)
    main = arena.main
    _, ledger = await new_desk(main.redis, [SELLER, BUYER, "fees"])
    await ledger.fund(SELLER, "BTC", 10 * COIN)
    await ledger.fund(BUYER, "BTC", COIN)
    small = dict(min_amount=1, max_amount=COIN // 1000)
    sell = await main.create_offer(SELLER, spec("sell", 5 * COIN, **small), now=T0)
    buy = await main.create_offer(BUYER, spec("buy", 5 * COIN, **small), now=T0)
    released = returned = 0
    settle_each = rng.random() < 0.5

    async def check(trade: Trade | None) -> None:
        await ledger.check()
        offer = await main.get_offer(sell.id)
        live = trade.amount if trade is not None and trade.status in ACTIVE else 0
        [bal] = await accounts.balances(main.redis, SELLER)
        assert bal.escrow == offer.amount + live, (bal, offer, trade)

    for i in range(n):
        t = T0 + (i + 1) * 10 * WINDOW_MS
        offer = sell if rng.random() < 0.5 else buy
        taker = BUYER if offer is sell else SELLER
        amount = rng.randint(1, COIN // 1000)
        trade = await main.take_offer(taker, offer.id, amount, now=t)
        await check(trade)
        paid = rng.random() < 0.5
        if paid:
            trade = await arena.buyer.mark_paid(BUYER, trade.id, now=t + 1)
            await check(trade)
        late = t + WINDOW_MS + 1  # past the deadline: the expiry is due
        moves: list[tuple[str, Any]] = []
        for _ in range(rng.choice((1, 1, 2))):
            moves += [
                ("release", arena.seller.confirm_release(SELLER, trade.id, now=late)),
                ("cancel", arena.buyer.cancel_trade(BUYER, trade.id, now=late)),
                ("expire", arena.job.expire_trade(trade.id, now=late)),
                ("dispute", (arena.buyer if rng.random() < 0.5 else arena.seller).open_dispute(
                    rng.choice((BUYER, SELLER)), trade.id, "no payment seen", now=late)),
            ]  # fmt: skip
        rng.shuffle(moves)
        coros = [c for _, c in moves]
        if rng.random() < 0.3:
            coros.append(arena.settler.settle_once())
        results = await asyncio.gather(*(_try(c) for c in coros))
        final = await main.get_trade(SELLER, trade.id)
        winners = {
            name
            for (name, _), res in zip(moves, results, strict=False)
            if not isinstance(res, EngineError)
            and not (name == "expire" and res.outcome in ("not_pending", "not_due"))
        }
        assert len(winners) == 1, (i, winners, results)
        [won] = winners
        expected = {"release": "RELEASED", "cancel": "CANCELLED", "expire": "EXPIRED",
                    "dispute": "DISPUTED"}[won]  # fmt: skip
        assert final.status == expected and final.version == (3 if paid else 2)
        if paid:
            assert won in ("release", "dispute")
        else:
            assert won != "dispute"
        await check(final)
        if final.status == "DISPUTED":
            pair = ("release", "refund")
            results = await asyncio.gather(
                _try(arena.admin1.resolve_dispute(ADMINS[0], trade.id, rng.choice(pair), now=late)),
                _try(arena.admin2.resolve_dispute(ADMINS[1], trade.id, rng.choice(pair), now=late)),
            )
            final = await main.get_trade(SELLER, trade.id)
            ok = [r for r in results if not isinstance(r, EngineError)]
            assert len(ok) in (1, 2) and final.status in ("RELEASED", "REFUNDED")
            if len(ok) == 2:  # both chose the same resolution: the second was a replay
                assert ok[0] == ok[1]
            await check(final)
        if final.status == "RELEASED":
            released += final.amount
        else:
            assert final.status in RETURNED
            returned += final.amount
        if settle_each or rng.random() < 0.2:
            await arena.settler.drain()
            await check(final)
    await arena.settler.drain()
    await ledger.check(main)
    assert (await ledger.in_flight()) == {}
    bea = await accounts.balances(main.redis, BUYER)
    assert [b.available for b in bea] == [COIN + released]
    sam = await accounts.balances(main.redis, SELLER)
    assert [b.total for b in sam] == [10 * COIN - released]
    assert released + returned > 0


async def test_200_races_one_winner_each(arena: Arena) -> None:
    await run_races(arena, 200, seed=1)


@pytest.mark.slow
async def test_1000_races_one_winner_each(arena: Arena) -> None:
    await run_races(arena, 1000, seed=2)
