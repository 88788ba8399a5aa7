"""Settler: market entries and transfer outboxes applied exactly once (fake + real)."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from engine import accounts, addresses, keys
from engine.settlement import MarketAssets, may_settle, ops_for_entry
from engine.types import Balance
from tests.test_accounts_support import (
    COIN,
    SyntheticMarket,
    dump_account,
    fund,
    funded_market,
    setup_assets,
    totals,
)
from workers.settler import Settler

USERS = ["alice", "bob"]
PRICE = 30_000 * COIN  # 30000 USD per BTC, in USD units


@pytest.fixture
async def mkt(redis: Any) -> SyntheticMarket:
    return await funded_market(redis)


async def test_fill_moves_funds_charges_fees_and_returns_price_improvement(
    redis: Any, mkt: SyntheticMarket
) -> None:
    ask = await mkt.hold("bob", "sell", PRICE, 2 * COIN)
    bid = await mkt.hold("alice", "buy", PRICE + 1000 * COIN, COIN)  # pays less than its limit
    assert ask and bid
    await mkt.rest(ask)
    await mkt.take(bid, ask, COIN)
    stats = await Settler(redis).drain()
    assert stats.entries == 3 and len(stats.lags_ms) == 3
    # taker buys 1 BTC at 30000: pays 30000 USD, gets 1 BTC - 20 bps
    assert await accounts.balance(redis, "alice", "BTC") == Balance("BTC", COIN - COIN // 500, 0, 0)
    assert await accounts.balance(redis, "alice", "USD") == Balance("USD", 70_000 * COIN, 0, 0)
    # maker sold 1 of 2 BTC: gets 30000 USD - 10 bps, 1 BTC still held for the rest
    assert await accounts.balance(redis, "bob", "USD") == Balance("USD", 29_970 * COIN, 0, 0)
    assert await accounts.balance(redis, "bob", "BTC") == Balance("BTC", 8 * COIN, COIN, 0)
    fees = await accounts.balances(redis, "fees")
    assert fees == [Balance("BTC", COIN // 500, 0, 0), Balance("USD", 30 * COIN, 0, 0)]
    assert [h.order_id for h in await accounts.holds(redis, "bob")] == [ask.id]
    assert await accounts.holds(redis, "alice") == []
    assert await totals(redis, USERS) == {"BTC": 10 * COIN, "USD": 100_000 * COIN}


async def test_reapplying_entries_changes_nothing(redis: Any, mkt: SyntheticMarket) -> None:
    ask = await mkt.hold("bob", "sell", PRICE, 2 * COIN)
    bid = await mkt.hold("alice", "buy", PRICE, COIN)
    assert ask and bid
    await mkt.rest(ask)
    await mkt.take(bid, ask, COIN)
    first = Settler(redis)
    await first.drain()
    await first.release_leases()
    before = {u: await dump_account(redis, u) for u in [*USERS, "fees"]}
    await redis.delete(keys.market_prefix("BTC-USD") + "stl")  # forget the read position
    stats = await Settler(redis, instance="other").drain()
    assert stats.entries == 3  # read again, applied nowhere
    assert {u: await dump_account(redis, u) for u in [*USERS, "fees"]} == before


async def test_cancel_and_reduce_release_the_rest_of_the_hold(
    redis: Any, mkt: SyntheticMarket
) -> None:
    bid = await mkt.hold("alice", "buy", PRICE, 3 * COIN)
    ask = await mkt.hold("bob", "sell", PRICE, COIN)
    assert bid and ask
    await mkt.rest(bid)
    await mkt.take(ask, bid, COIN)
    await mkt.reduce(bid, 2 * COIN)  # 1 BTC left to buy -> 30000 USD stays held
    s = Settler(redis)
    await s.drain()
    assert await accounts.balance(redis, "alice", "USD") == Balance(
        "USD", 40_000 * COIN, 30_000 * COIN, 0
    )
    await mkt.cancel(bid)
    await s.drain()
    assert await accounts.balance(redis, "alice", "USD") == Balance("USD", 70_000 * COIN, 0, 0)
    assert await accounts.holds(redis, "alice") == []
    assert await totals(redis, USERS) == {"BTC": 10 * COIN, "USD": 100_000 * COIN}


async def test_self_trade_settles_both_sides_of_one_account(
    redis: Any, mkt: SyntheticMarket
) -> None:
    await fund(redis, "bob", "USD", 50_000 * COIN)
    ask = await mkt.hold("bob", "sell", PRICE, COIN)
    bid = await mkt.hold("bob", "buy", PRICE, COIN)
    assert ask and bid
    await mkt.rest(ask)
    await mkt.take(bid, ask, COIN)
    await Settler(redis).drain()
    fees = {b.asset: b.available for b in await accounts.balances(redis, "fees")}
    assert await accounts.balances(redis, "bob") == [
        Balance("BTC", 10 * COIN - fees["BTC"], 0, 0),
        Balance("USD", 50_000 * COIN - fees["USD"], 0, 0),
    ]


async def test_a_trade_beyond_the_hold_stalls_the_stream_without_touching_those_accounts(
    redis: Any, mkt: SyntheticMarket
) -> None:
    ask = await mkt.hold("bob", "sell", PRICE, COIN)
    bid = await mkt.hold("alice", "buy", PRICE, COIN)
    assert ask and bid
    ask.amount = bid.amount = 2 * COIN  # the market thinks they are bigger than held
    await mkt.rest(ask)
    await mkt.take(bid, ask, 2 * COIN)
    before = {u: await dump_account(redis, u) for u in USERS}
    s = Settler(redis)
    assert (await s.settle_once()).entries == 0
    fees = await dump_account(redis, "fees")  # its part of the entry applies, once
    assert (await s.settle_once()).entries == 0  # retried, still refused
    assert {u: await dump_account(redis, u) for u in USERS} == before
    assert await dump_account(redis, "fees") == fees
    assert await redis.get(keys.market_prefix("BTC-USD") + "stl") is None


async def test_transfer_outbox_is_credited_once_and_leaves_the_index(redis: Any) -> None:
    await setup_assets(redis)
    await fund(redis, "alice", "USD", 10 * COIN)
    bob = await addresses.deposit_address(redis, "bob", "USD")
    for i in range(3):
        await accounts.transfer(redis, "alice", f"t{i}", "USD", COIN, bob)
    s = Settler(redis)
    stats = await s.drain()
    await s.release_leases()
    assert stats.entries >= 3
    assert await accounts.balance(redis, "bob", "USD") == Balance("USD", 3 * COIN, 0, 0)
    assert await accounts.index_members(redis, "outbox") == []
    await redis.delete(accounts.account_stream_key("alice").replace(":ev", ":stl"))
    await accounts.transfer(redis, "alice", "t9", "USD", COIN, bob)  # re-signals alice
    await Settler(redis, instance="b").drain()
    assert await accounts.balance(redis, "bob", "USD") == Balance("USD", 4 * COIN, 0, 0)
    assert await totals(redis, USERS) == {"USD": 10 * COIN}


async def test_only_the_lease_holder_settles_a_stream(redis: Any, mkt: SyntheticMarket) -> None:
    ask = await mkt.hold("bob", "sell", PRICE, COIN)
    assert ask
    await mkt.rest(ask)
    await mkt.cancel(ask)
    first, second = Settler(redis, instance="a"), Settler(redis, instance="b")
    assert (await first.settle_once()).entries == 3  # market created, rest, cancel
    await mkt.rest(ask)
    assert (await second.settle_once()).entries == 0
    assert (await first.settle_once()).entries == 1
    await first.release_leases()
    await mkt.cancel(ask)
    assert (await second.settle_once()).entries == 1


async def test_balance_pushes_are_published_per_user(redis: Any, mkt: SyntheticMarket) -> None:
    pubsub = redis.pubsub()
    await pubsub.subscribe("hftx:u:alice")
    await pubsub.get_message(timeout=1)  # subscribe confirmation
    ask = await mkt.hold("bob", "sell", PRICE, COIN)
    bid = await mkt.hold("alice", "buy", PRICE, COIN)
    assert ask and bid
    await mkt.rest(ask)
    await mkt.take(bid, ask, COIN)
    await Settler(redis).drain()
    pushes = []
    for _ in range(20):
        msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.2)
        if msg:
            pushes.append(orjson.loads(msg["data"]))
        elif len(pushes) >= 2:
            break
    await pubsub.aclose()
    assert {p["asset"]: p for p in pushes} == {
        "USD": {"channel": "balances", "asset": "USD", "free": "70000.00000000",
                "locked": "0.00000000", "total": "70000.00000000"},
        "BTC": {"channel": "balances", "asset": "BTC", "free": "0.99800000",
                "locked": "0.00000000", "total": "0.99800000"},
    }  # fmt: skip


async def test_running_settler_applies_entries_as_they_arrive(
    redis: Any, mkt: SyntheticMarket
) -> None:
    s = Settler(redis, refresh_s=0.05)
    stop = asyncio.Event()
    task = asyncio.create_task(s.run(stop))
    ask = await mkt.hold("bob", "sell", PRICE, COIN)
    assert ask
    await mkt.rest(ask)
    await mkt.cancel(ask)
    for _ in range(200):
        if await accounts.holds(redis, "bob") == []:
            break
        await asyncio.sleep(0.02)
    stop.set()
    await task
    assert await accounts.balance(redis, "bob", "BTC") == Balance("BTC", 10 * COIN, 0, 0)


async def test_running_settler_picks_up_a_market_created_after_it_started(redis: Any) -> None:
    """New markets are noticed within moments (a SCARD probe), not at the next full
    re-read of the registry (here a minute away)."""
    s = Settler(redis, refresh_s=60)
    stop = asyncio.Event()
    task = asyncio.create_task(s.run(stop))
    await asyncio.sleep(0.2)  # running, with no market yet
    mkt = await funded_market(redis)
    ask = await mkt.hold("bob", "sell", PRICE, COIN)
    assert ask
    await mkt.rest(ask)
    await mkt.cancel(ask)
    for _ in range(100):
        if await accounts.holds(redis, "bob") == []:
            break
        await asyncio.sleep(0.02)
    stop.set()
    await task
    assert await accounts.holds(redis, "bob") == []


async def test_a_saved_position_never_moves_back(redis: Any) -> None:
    """A settler whose lease lapsed may still write the position it had: readers (the
    web node's read-your-writes wait) rely on it only moving forward."""
    await setup_assets(redis)  # loads the function library
    key = "{m:BTC-USD}:stl"
    assert await redis.fcall("acct_position", 1, key, "1700000000000-5") == 1
    assert await redis.fcall("acct_position", 1, key, "1700000000000-4") == 0
    assert await redis.get(key) == b"1700000000000-5"
    assert await redis.fcall("acct_position", 1, key, "1700000000001-0") == 1
    assert await redis.get(key) == b"1700000000001-0"
    with pytest.raises(Exception, match="bad position"):
        await redis.fcall("acct_position", 1, key, "later")


async def test_a_lapsed_settler_does_not_write_its_older_position_back(
    redis: Any, mkt: SyntheticMarket
) -> None:
    ask = await mkt.hold("bob", "sell", PRICE, COIN)
    assert ask
    await mkt.rest(ask)
    s = Settler(redis, instance="a")
    await s.drain()  # its position is the entry of the rest, saved
    key = keys.market_prefix("BTC-USD") + "stl"
    mine = (await redis.get(key)).decode()
    await redis.set(key, "99999999999999-0")  # another instance went further meanwhile
    (stream,) = [st for st in s._streams.values() if st.key.startswith("{m:")]
    stream.saved = "0-0"  # the older position is still to be written by this one
    await s.flush()
    assert stream.pos == mine
    assert await redis.get(key) == b"99999999999999-0"


async def test_a_transfer_wakes_the_running_settler(redis: Any) -> None:
    """The outbox loop sleeps on a wake-up list: a transfer pushes a token, so the payee
    is credited at once, not at the next poll (here 3 s away)."""
    await setup_assets(redis)
    await fund(redis, "alice", "USD", 10 * COIN)
    bob = await addresses.deposit_address(redis, "bob", "USD")
    s = Settler(redis, outbox_idle_s=3.0)
    stop = asyncio.Event()
    task = asyncio.create_task(s.run(stop))
    await asyncio.sleep(0.3)  # idle, blocked on the wake-up list
    await accounts.transfer(redis, "alice", "t1", "USD", COIN, bob)
    for _ in range(100):
        if (await accounts.balance(redis, "bob", "USD")).available == COIN:
            break
        await asyncio.sleep(0.01)
    credited = await accounts.balance(redis, "bob", "USD")
    stop.set()
    await task
    assert credited == Balance("USD", COIN, 0, 0)


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
