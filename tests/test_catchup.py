"""Reads wait for the drain and the settler (``api.catchup``): bounded, only when deployed."""

from __future__ import annotations

import time
from typing import Any

import redis.asyncio as aredis

from api.catchup import Catchup
from engine import accounts
from ops.processes import free_port
from workers import streams

MARKETS = ("AAA-USD", "BBB-USD")


async def registered(redis: Any, *market_ids: str) -> list[str]:
    for m in market_ids:
        await redis.sadd(streams.MARKETS_SET, m)
        await redis.xadd(streams.market_stream(m), {"e": "[]"})
    return [streams.market_stream(m) for m in market_ids]


async def read_and_ack(redis: Any, stream: str, ack: bool = True) -> None:
    got = await redis.xreadgroup(streams.DRAIN_GROUP, "c1", {stream: ">"})
    if ack:
        for _, entries in got:
            await redis.xack(stream, streams.DRAIN_GROUP, *[i for i, _ in entries])


async def test_without_a_drain_nothing_is_waited_for(redis: Any) -> None:
    await registered(redis, *MARKETS)
    t0 = time.monotonic()
    assert await Catchup(redis, 2.0, 2.0).drained(list(MARKETS)) is True
    assert time.monotonic() - t0 < 1.0


async def test_waits_until_the_drain_acknowledged_what_was_there(redis: Any) -> None:
    a, b = await registered(redis, *MARKETS)
    for s in (a, b):
        await streams.ensure_group(redis, s, streams.DRAIN_GROUP)
    catchup = Catchup(redis, 0.2, 0.2)
    assert await catchup.drained(list(MARKETS)) is False  # nothing delivered yet
    await read_and_ack(redis, a)
    assert await catchup.drained([MARKETS[0]]) is True
    await read_and_ack(redis, b, ack=False)  # delivered, still pending: not committed
    assert await catchup.drained(list(MARKETS)) is False
    await redis.xack(b, streams.DRAIN_GROUP, *[i for i, _ in await redis.xrange(b)])
    assert await catchup.drained(list(MARKETS)) is True


async def test_drained_through_a_position_ignores_later_entries(redis: Any) -> None:
    (a,) = await registered(redis, MARKETS[0])
    await streams.ensure_group(redis, a, streams.DRAIN_GROUP)
    await read_and_ack(redis, a)
    await redis.xadd(a, {"e": "[]"})
    await read_and_ack(redis, a, ack=False)  # the later entry: delivered, not committed
    first, last = [streams.text(i) for i, _ in await redis.xrange(a)]
    assert await streams.drained_through(redis, a, first) is True
    assert await streams.drained_through(redis, a, last) is False


async def test_a_new_stream_is_waited_for_when_a_drain_runs(redis: Any) -> None:
    """A drain runs (another market has its group): a market it has not picked up yet
    is waited for, not skipped."""
    a, b = await registered(redis, *MARKETS)
    await streams.ensure_group(redis, a, streams.DRAIN_GROUP)
    catchup = Catchup(redis, 0.2, 0.2)
    assert await catchup.drained([MARKETS[1]]) is False
    await streams.ensure_group(redis, b, streams.DRAIN_GROUP)
    await read_and_ack(redis, b)
    assert await catchup.drained([MARKETS[1]]) is True


async def test_a_zero_wait_disables_it(redis: Any) -> None:
    (a,) = await registered(redis, MARKETS[0])
    await streams.ensure_group(redis, a, streams.DRAIN_GROUP)
    assert await Catchup(redis, 0, 0).drained([MARKETS[0]]) is True


async def test_balance_reads_wait_for_the_settler_on_the_users_markets(redis: Any) -> None:
    """Only the markets the user has holds in (orders not settled to the end) count."""
    a, b = await registered(redis, *MARKETS)
    catchup = Catchup(redis, 0.2, 0.2)
    holds = accounts.account_keys("bob")[1]
    assert await catchup.settled_for("bob") is True  # no holds: nothing to wait for
    await redis.hset(holds, "o1", f"{MARKETS[0]}|USD|100|1|")
    assert await catchup.settled_for("bob") is True  # no settler ever ran: no wait
    last_a = streams.text((await redis.xrevrange(a, count=1))[0][0])
    await redis.set(streams.settler_position_key(b), "1-0")  # a settler runs (on b)
    catchup = Catchup(redis, 0.2, 0.2)  # "no settler" is believed for a second
    assert await catchup.settled_for("bob") is False  # a: not applied
    await redis.set(streams.settler_position_key(a), last_a)
    assert await catchup.settled_for("bob") is True  # b lags, but bob has nothing there
    await redis.hset(holds, "o2", f"{MARKETS[1]}|USD|100|1|")
    assert await catchup.settled_for("bob") is False
    await redis.xadd(a, {"e": "[]"})
    await redis.set(streams.settler_position_key(b), "99999999999999-0")
    assert await catchup.settled_for("bob") is False  # a has a new entry


async def test_a_transfer_waits_for_the_payees_cursor(redis: Any) -> None:
    catchup = Catchup(redis, 0.2, 0.2)
    assert await catchup.credited("bob", "alice", "1700000000000-1") is True  # no settler
    await redis.set(streams.settler_position_key(accounts.account_stream_key("alice")), "1-0")
    catchup = Catchup(redis, 0.2, 0.2)  # "no settler" is believed for a second
    cursor = accounts.account_keys("bob")[2]
    source = accounts.account_stream_key("alice")
    assert await catchup.credited("bob", "alice", "1700000000000-1") is False
    await redis.hset(cursor, source, "1700000000000-0")
    assert await catchup.credited("bob", "alice", "1700000000000-1") is False
    await redis.hset(cursor, source, "1700000000000-1")
    assert await catchup.credited("bob", "alice", "1700000000000-1") is True
    assert await Catchup(redis, 0, 0).credited("bob", "alice", "1800000000000-0") is True


async def test_redis_errors_end_a_wait_and_are_counted() -> None:
    class Timeouts:
        def __init__(self) -> None:
            self.seen: list[str] = []

        def labels(self, worker: str) -> Any:
            self.seen.append(worker)
            return self

        def inc(self) -> None:
            pass

    timeouts = Timeouts()
    down = aredis.Redis(host="127.0.0.1", port=free_port())  # nothing listens there
    catchup = Catchup(down, 0.2, 0.2, timeouts)
    assert await catchup.credited("bob", "alice", "1-0") is False
    assert await catchup.settled_for("bob") is False
    assert await catchup.drained(["AAA-USD"]) is False
    assert timeouts.seen == ["settler", "settler", "drain"]
    await down.aclose()
