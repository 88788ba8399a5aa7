"""The drain trims account streams too, not only the streams the settler reads.

The settler reads a user's account stream ``{u:U}:ev`` only for the transfers the
user sends (``{g}:outbox``), so ``{u:U}:stl`` exists only for users who paid
someone. A soak run of the demo showed every other account stream (the bots', the
fee account's) growing without end: the trim took the missing position for "the
settler has not started" and trimmed nothing.
"""

from __future__ import annotations

from typing import Any

import pytest

from engine import accounts, addresses
from tests.test_accounts_support import COIN, setup_assets
from workers import streams
from workers.drain import Drain, DrainConfig
from workers.settler import Settler


def cfg() -> DrainConfig:
    return DrainConfig(claim_idle_ms=100, maintain_s=0.02, block_ms=20, trim_keep_ms=0)


async def deposits(redis: Any, user: str, n: int) -> str:
    address = await addresses.deposit_address(redis, user, "BTC")
    for i in range(n):
        await accounts.deposit(redis, f"dep-{user}-{i}", address, "BTC", COIN)
    return address


async def ids(redis: Any, user: str) -> list[bytes]:
    return [i for i, _ in await redis.xrange(accounts.account_stream_key(user))]


@pytest.fixture
async def r(redis_real: Any) -> Any:
    await setup_assets(redis_real)
    return redis_real


async def test_account_stream_of_a_user_who_never_paid_is_trimmed(r: Any, db_url: str) -> None:
    await deposits(r, "quiet", 6)
    drain = Drain(r, db_url, cfg())
    try:
        await drain.catch_up(timeout_s=30)
        await drain.maintain(force=True)
    finally:
        await drain.close()
    left = await ids(r, "quiet")
    # everything the drain committed goes but the newest entry (XTRIM MINID keeps it)
    assert len(left) == 1
    assert await r.get("{u:quiet}:stl") is None  # the settler never read this stream


async def test_a_payer_stream_is_kept_until_the_settler_has_read_it(r: Any, db_url: str) -> None:
    await deposits(r, "payer", 4)
    bob = await deposits(r, "bob", 1)
    await accounts.transfer(r, "payer", "t1", "BTC", COIN, bob)
    before = await ids(r, "payer")
    assert len(before) == 5
    drain = Drain(r, db_url, cfg())
    try:
        await drain.catch_up(timeout_s=30)
        await drain.maintain(force=True)
        # the transfer is in the outbox and the settler has not read the stream yet
        assert await ids(r, "payer") == before
        settler = Settler(r, publish=False)
        await settler.drain()
        await settler.release_leases()
        assert (await accounts.balance(r, "bob", "BTC")).available == 2 * COIN
        assert await r.get("{u:payer}:stl") == before[-1]
        await drain.maintain(force=True)
    finally:
        await drain.close()
    assert await ids(r, "payer") == before[-1:]
    group = next(g for g in await streams.groups(r, "{u:payer}:ev") if g.name == "drain")
    assert group.pending == 0
