"""A drain asked to stop while Redis or PostgreSQL is down stops within its grace
period (it used to retry forever and wait for SIGKILL); nothing it held is lost."""

from __future__ import annotations

import asyncio

import redis.asyncio as aredis

from ops.bench.drain import LOAD_MARKET, EngineLoad, emitted_trades
from ops.processes import free_port
from tests.drain_helpers import rows
from workers import streams
from workers.drain import Drain, DrainConfig

STREAM = f"{{m:{LOAD_MARKET.id}}}:ev"


def cfg(**kw: object) -> DrainConfig:
    base: dict[str, object] = dict(
        claim_idle_ms=200, maintain_s=0.05, block_ms=20, trim_require=("keep-all",),
        stop_grace_s=0.5, backoff_min_s=0.05, backoff_max_s=0.2,
    )  # fmt: skip
    base.update(kw)
    return DrainConfig(**base)  # type: ignore[arg-type]


async def stops_within(drain: Drain, after_s: float, limit_s: float) -> None:
    stop = asyncio.Event()
    running = asyncio.create_task(drain.run(stop))
    await asyncio.sleep(after_s)
    assert not running.done()  # it was retrying, not failed
    stop.set()
    await asyncio.wait_for(running, limit_s)


async def test_a_drain_stops_while_redis_is_down():
    nowhere = aredis.Redis(port=free_port(), socket_connect_timeout=0.2)
    try:
        await stops_within(Drain(nowhere, "postgresql://127.0.0.1:1/none", cfg()), 0.5, 10)
    finally:
        await nowhere.aclose()


async def test_a_drain_stops_while_postgresql_is_down_and_its_batch_stays_pending(
    redis_real, db_url
):
    load = EngineLoad(redis_real, seed=31)
    await load.setup()
    await load.run(100)
    down = f"postgresql://127.0.0.1:{free_port()}/none?connect_timeout=1"
    drain = Drain(redis_real, down, cfg())
    await stops_within(drain, 1.0, 10)
    group = next(g for g in await streams.groups(redis_real, STREAM) if g.name == "drain")
    assert group.pending > 0  # read, never written, never acked
    later = Drain(redis_real, db_url, cfg())  # the next drain writes every entry once
    try:
        await later.catch_up(timeout_s=60)
    finally:
        await later.close()
    emitted = await emitted_trades(redis_real, LOAD_MARKET.id)
    assert len(emitted) > 0
    assert await rows(db_url, "SELECT market, trade_id FROM trades ORDER BY trade_id") == emitted
