"""Drain.run with several writer connections: batches commit in any order, still
exactly once, candles and order states as with one writer."""

from __future__ import annotations

import asyncio

import pytest

from ops.bench.drain import LOAD_MARKET, EngineLoad, emitted_trades
from tests.drain_helpers import assert_orders_and_candles_match, rows
from workers import streams
from workers.drain import Drain, DrainConfig

MKT = LOAD_MARKET.id
STREAM = f"{{m:{MKT}}}:ev"


@pytest.mark.parametrize("writers", [1, 3])
async def test_concurrent_writers_commit_everything_once(redis_real, db_url, writers):
    load = EngineLoad(redis_real, seed=11)
    await load.setup()
    await load.run(50)
    cfg = DrainConfig(
        count=7, writers=writers, block_ms=10, maintain_s=0.05, trim_require=("keep-all",)
    )
    drain = Drain(redis_real, db_url, cfg)
    stop = asyncio.Event()
    running = asyncio.create_task(drain.run(stop))
    await load.run(600, max_seconds=60)  # while the writers commit small batches
    for _ in range(600):  # until the group has acknowledged everything
        gs = [g for g in await streams.groups(redis_real, STREAM) if g.name == "drain"]
        if gs and gs[0].pending == 0 and gs[0].lag == 0:
            break
        await asyncio.sleep(0.05)
    stop.set()
    await asyncio.wait_for(running, 30)
    assert drain.committed > 0
    others = (
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND pid <> pg_backend_pid()"
    )
    for _ in range(100):  # run() closed its connections (backends exit just after)
        if await rows(db_url, others) == [(0,)]:
            break
        await asyncio.sleep(0.02)
    assert await rows(db_url, others) == [(0,)]

    emitted = await emitted_trades(redis_real, MKT)
    assert len(emitted) > 50
    got = await rows(db_url, "SELECT market, trade_id FROM trades ORDER BY trade_id")
    assert got == emitted
    n_entries = await redis_real.xlen(STREAM)
    assert await rows(db_url, "SELECT count(*) FROM market_events") == [(n_entries,)]
    await assert_orders_and_candles_match(redis_real, db_url, MKT)


async def test_ack_acknowledges_entries_of_several_streams(redis_real):
    """The drain's XACK (hiredis-packed on a single node) acks exactly what it is given."""
    await check_ack(redis_real)


async def test_ack_on_a_cluster(redis_cluster):
    await check_ack(redis_cluster)


async def check_ack(redis) -> None:
    from workers.drain import ack

    names = ["{m:A-B}:ev", "{m:C-D}:ev", "{u:7}:ev"]
    for s in names:
        await streams.ensure_group(redis, s, "drain")
        for i in range(5):
            await redis.xadd(s, {"e": f"[{i}]"})
    got = await streams.read_group(redis, "drain", "c1", names, 100, None)
    assert len(got) == 15
    keep = [e for e in got if e.id == got[0].id or e.stream == names[2]][:3]
    done = [e for e in got if e not in keep]
    assert await ack(redis, "drain", done) == len(done)
    assert await ack(redis, "drain", done) == 0  # already acknowledged
    assert await ack(redis, "drain", []) == 0
    pending = {}
    for s in names:
        pending[s] = {p.id for p in await streams.pending_idle(redis, s, "drain", 0)}
    assert pending == {s: {e.id for e in keep if e.stream == s} for s in names}
