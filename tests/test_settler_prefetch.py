"""Settler: under load the account calls of a batch carry the read of the next one."""

from __future__ import annotations

from typing import Any

from engine import accounts, keys
from engine.types import Balance
from tests.test_accounts_support import COIN, funded_market
from workers.settler import Settler

PRICE = 30_000 * COIN


async def test_entries_read_with_the_account_calls_are_applied_without_a_read(
    redis_real: Any,
) -> None:
    mkt = await funded_market(redis_real)
    s = Settler(redis_real, batch=1)
    await s.drain()  # the market's own entries
    a = await mkt.hold("alice", "buy", PRICE, COIN)
    b = await mkt.hold("alice", "buy", PRICE, COIN)
    assert a and b
    await mkt.rest(a)  # entry 1: nothing to settle
    await mkt.cancel(a)  # entry 2: a's hold released
    await mkt.rest(b)  # entry 3: nothing to settle
    assert (await s.market_step(mkt.m.id)).entries == 1
    assert (await s.market_step(mkt.m.id)).entries == 1  # calls + read of entry 3
    (stream,) = [st for st in s._streams.values() if st.key.startswith("{m:")]
    assert stream.prefetched is not None
    before = stream.client.batches
    assert (await s.market_step(mkt.m.id)).entries == 1
    assert stream.client.batches == before  # entry 3 came with entry 2's calls
    assert (await s.drain()).entries == 0
    last = (await redis_real.xrevrange(keys.market_stream(mkt.m.id), count=1))[0][0]
    assert await redis_real.get(keys.market_prefix(mkt.m.id) + "stl") == last
    held = mkt.notional(PRICE, COIN)
    assert await accounts.balance(redis_real, "alice", "USD") == Balance(
        "USD", 100_000 * COIN - held, held, 0
    )


async def test_a_prefetch_is_dropped_when_the_lease_is_lost(redis_real: Any) -> None:
    mkt = await funded_market(redis_real)
    s = Settler(redis_real, batch=2)
    await s.drain()  # the market's own entries
    a = await mkt.hold("alice", "buy", PRICE, COIN)
    assert a
    await mkt.rest(a)
    await mkt.cancel(a)
    await mkt.rest(a)  # read with the cancel's calls
    assert (await s.market_step(mkt.m.id)).entries == 2
    (stream,) = [st for st in s._streams.values() if st.key.startswith("{m:")]
    assert stream.prefetched is not None
    await s._forget_position(stream)
    assert stream.prefetched is None
