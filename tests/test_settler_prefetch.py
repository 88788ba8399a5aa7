"""Settler: under load the account calls of a batch carry the read of the next one."""

from __future__ import annotations

from typing import Any

import orjson

from engine import accounts, keys
from engine.settlement import MarketAssets, may_settle, ops_for_entry
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


def test_entries_that_may_not_settle_have_no_ops() -> None:
    """``may_settle`` is False only for entries ``ops_for_entry`` has nothing for."""
    m = MarketAssets("BTC-USD", "BTC", "USD", 8)
    order = {"id": "o1", "u": "alice", "side": "buy", "amount": COIN, "price": PRICE}
    accepted = {"e": "accepted", "seq": 1, "ts": 1, "type": "limit", **order}
    level = {"e": "level", "seq": 2, "ts": 1, "side": "buy", "price": PRICE, "size": COIN}
    done = {"e": "done", "seq": 3, "ts": 1, "reason": "CANCELED", "filled": 0, **order}
    reduced = {"e": "reduced", "seq": 4, "ts": 1, "filled": 0, **order}
    for events, settles in (
        ([accepted, level], False),
        ([level], False),
        ([{"e": "market", "seq": 5, "ts": 1}], False),
        ([done, level], True),
        ([reduced], True),
        ([accepted, done], True),
    ):
        raw = orjson.dumps(events)
        assert may_settle(raw) is settles and may_settle(raw.decode()) is settles
        assert bool(ops_for_entry(m, 9, events)) is settles
