"""Settler: the read position and balance pushes that go out with the next read."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from engine import accounts, keys
from engine.types import Balance
from tests.test_accounts_support import COIN, SyntheticMarket, funded_market, totals
from workers.settler import Settler

PRICE = 30_000 * COIN


@pytest.fixture
async def mkt(redis: Any) -> SyntheticMarket:
    return await funded_market(redis)


async def trade(mkt: SyntheticMarket) -> None:
    """bob rests 1 BTC at PRICE, alice takes it."""
    ask = await mkt.hold("bob", "sell", PRICE, COIN)
    bid = await mkt.hold("alice", "buy", PRICE, COIN)
    assert ask and bid
    await mkt.rest(ask)
    await mkt.take(bid, ask, COIN)


async def pushes_of(pubsub: Any, want: int, timeout_s: float = 3.0) -> list[dict[str, Any]]:
    """Messages until ``want`` arrived, then whatever follows within 0.2 s."""
    out: list[dict[str, Any]] = []
    deadline = asyncio.get_running_loop().time() + timeout_s
    while asyncio.get_running_loop().time() < deadline:
        msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.2)
        if msg:
            out.append(orjson.loads(msg["data"]))
        elif len(out) >= want:
            break
    return out


async def subscribe(redis: Any, user: str) -> Any:
    pubsub = redis.pubsub()
    await pubsub.subscribe(f"hftx:u:{user}")
    await pubsub.get_message(timeout=1)  # subscribe confirmation
    return pubsub


async def stream_tail(redis: Any, mkt: SyntheticMarket) -> tuple[bytes, bytes | None]:
    """(last entry id of the market stream, the settler's saved position)."""
    last = await redis.xrevrange(keys.market_stream(mkt.m.id), count=1)
    return last[0][0], await redis.get("{m:" + mkt.m.id + "}:stl")


async def test_running_settler_publishes_and_saves_its_position_while_it_waits(
    redis: Any, mkt: SyntheticMarket
) -> None:
    pubsub = await subscribe(redis, "alice")
    s = Settler(redis, refresh_s=0.05)
    stop = asyncio.Event()
    task = asyncio.create_task(s.run(stop))
    try:
        await trade(mkt)
        pushes = await pushes_of(pubsub, 2)
        # still running (blocked in its next read): the position is saved already
        last, saved = await stream_tail(redis, mkt)
        assert saved == last
    finally:
        stop.set()
        await task
        await pubsub.aclose()
    assert sorted((p["asset"], p["free"]) for p in pushes) == [
        ("BTC", "0.99800000"),
        ("USD", "70000.00000000"),
    ]


async def test_settle_once_leaves_nothing_pending(redis: Any, mkt: SyntheticMarket) -> None:
    pubsub = await subscribe(redis, "alice")
    await trade(mkt)
    assert (await Settler(redis).settle_once()).entries == 3
    last, saved = await stream_tail(redis, mkt)
    assert saved == last
    assert len(await pushes_of(pubsub, 2)) == 2
    await pubsub.aclose()


async def test_pushes_owed_when_the_lease_lapses_are_published_once(
    redis: Any, mkt: SyntheticMarket
) -> None:
    pubsub = await subscribe(redis, "alice")
    await trade(mkt)
    first = Settler(redis, instance="a", lease_ms=300)
    assert (await first.market_step(mkt.m.id)).entries == 3  # applied, not yet sent
    await asyncio.sleep(0.4)  # the lease lapses before the next read
    second = Settler(redis, instance="b")
    await second.drain()  # re-reads from the saved position: nothing applies twice
    assert (await first.market_step(mkt.m.id)).entries == 0  # lease lost: pushes go out
    pushes = await pushes_of(pubsub, 2)
    await pubsub.aclose()
    assert sorted(p["asset"] for p in pushes) == ["BTC", "USD"]
    assert await accounts.balance(redis, "alice", "BTC") == Balance("BTC", COIN - COIN // 500, 0, 0)
    assert await totals(redis, ["alice", "bob"]) == {"BTC": 10 * COIN, "USD": 100_000 * COIN}
