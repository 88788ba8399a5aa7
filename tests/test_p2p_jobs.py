"""The P2P expiry job under arq (real Valkey): deferred to the payment deadline,
retried after a partial failure, re-run after its worker is killed -- and the trade
expires exactly once every time."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aredis
from arq import create_pool
from arq.connections import ArqRedis, RedisSettings
from arq.jobs import Job
from arq.worker import Worker

from engine import notify
from engine.functions import ensure_loaded
from engine.p2p import P2P, now_ms
from engine.p2p_rules import Trade
from tests.p2p_helpers import COIN, Ledger, new_desk, spec, stream_events
from workers import p2p_jobs

WINDOW = 1  # minute
LEAD_MS = 300  # trades in these tests are due this long after they are taken


@pytest.fixture
async def env(valkey_url: str) -> AsyncIterator[tuple[P2P, Ledger, ArqRedis]]:
    redis = aredis.Redis.from_url(valkey_url)
    await redis.flushall()
    await ensure_loaded(redis)
    pool = await create_pool(RedisSettings.from_dsn(valkey_url))
    desk, ledger = await new_desk(redis, ["sam", "bea", "fees"])
    desk.scheduler = p2p_jobs.arq_scheduler(pool)
    await ledger.fund("sam", "BTC", 2 * COIN)
    try:
        yield desk, ledger, pool
    finally:
        await pool.aclose()
        await redis.aclose()


async def due_trade(desk: P2P, side: str = "buy") -> Trade:
    """A trade taken so that its payment deadline is LEAD_MS from now."""
    owner, taker = ("bea", "sam") if side == "buy" else ("sam", "bea")
    offer = await desk.create_offer(owner, spec(side, COIN, window=WINDOW))
    taken_at = now_ms() - WINDOW * 60_000 + LEAD_MS
    return await desk.take_offer(taker, offer.id, COIN // 4, now=taken_at)


def worker(desk: P2P, pool: ArqRedis, **kw: Any) -> Worker:
    return Worker(
        functions=p2p_jobs.FUNCTIONS, redis_pool=pool, burst=True, poll_delay=0.05,
        handle_signals=False, ctx={"engine": desk.redis}, **kw,
    )  # fmt: skip


async def expired_once(desk: P2P, ledger: Ledger, trade: Trade) -> None:
    """The trade expired, its effects happened once, everyone heard of it once."""
    now = await desk.get_trade("bea", trade.id)
    assert now.status == "EXPIRED"
    events = await stream_events(desk.redis, trade.seller, {"p2p_trade", "unescrow"})
    mine = [ev for ev in events if ev["id"] == trade.id]
    assert [ev.get("status", ev["e"]) for ev in mine] == ["PENDING", "unescrow", "EXPIRED"]
    assert (await desk.get_offer(trade.offer_id)).amount == COIN  # reservation returned
    for user in ("sam", "bea"):
        kinds = [n.kind for n in await notify.inbox(desk.redis, user)]
        assert kinds.count("p2p.trade_expired") == 1, (user, kinds)
    await ledger.check(desk)


async def test_the_deferred_job_expires_an_unpaid_trade_at_its_deadline(env):
    desk, ledger, pool = env
    trade = await due_trade(desk)
    paid = await due_trade(desk, "sell")
    await desk.mark_paid("bea", paid.id)
    assert await pool.zcard("arq:queue") == 2  # one job per trade, deferred
    started = time.monotonic()
    w = worker(desk, pool)
    await w.async_run()
    assert time.monotonic() - started >= (LEAD_MS - 100) / 1000  # not before the deadline
    assert w.jobs_complete == 2 and w.jobs_failed == 0
    await expired_once(desk, ledger, trade)
    assert (await desk.get_trade("bea", paid.id)).status == "PAID"  # the job left it alone
    assert await Job(p2p_jobs.job_id(trade.id), pool).result(timeout=1) == "expired"
    assert await Job(p2p_jobs.job_id(paid.id), pool).result(timeout=1) == "not_pending"


async def test_a_job_failing_after_its_first_step_is_retried_and_acts_once(env, monkeypatch):
    desk, ledger, pool = env
    trade = await due_trade(desk)
    real, calls = notify.notify, []

    async def flaky(*args: Any, **kw: Any) -> Any:
        calls.append(args[1])
        if len(calls) == 1:
            raise ConnectionError("lost the connection after the expiry was written")
        return await real(*args, **kw)

    monkeypatch.setattr(notify, "notify", flaky)
    monkeypatch.setattr(p2p_jobs, "_backoff", lambda ctx: 0.05)
    w = worker(desk, pool)
    await w.async_run()
    assert w.jobs_retried == 1 and w.jobs_complete == 1
    await expired_once(desk, ledger, trade)


WORKER_SCRIPT = textwrap.dedent(
    """
    import asyncio, sys
    import redis.asyncio as aredis
    from arq import func
    from arq.connections import RedisSettings
    from arq.worker import Worker
    from engine import notify
    from workers import p2p_jobs

    async def stuck(*args, **kw):  # the worker dies while notifying
        print("stuck", flush=True)
        await asyncio.sleep(3600)

    notify.notify = stuck

    async def main():
        url, timeout = sys.argv[1], float(sys.argv[2])
        fn = func(p2p_jobs.p2p_expire, name=p2p_jobs.EXPIRE_JOB, timeout=timeout)
        w = Worker(functions=[fn], redis_settings=RedisSettings.from_dsn(url), poll_delay=0.05,
                   queue_name="arq:queue", handle_signals=False,
                   ctx={"engine": aredis.Redis.from_url(url)})
        await w.main()

    asyncio.run(main())
    """
)


async def _killed_mid_job(env: Any, valkey_url: str, *, lease_lapses: bool) -> None:
    desk, ledger, pool = env
    trade = await due_trade(desk)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.Popen(
        [sys.executable, "-c", WORKER_SCRIPT, valkey_url, "1"],
        cwd=root, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": root},
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 30)
        assert line.strip() == b"stuck"
        assert (await desk.get_trade("bea", trade.id)).status == "EXPIRED"  # first step done
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    lease = f"arq:in-progress:{p2p_jobs.job_id(trade.id)}"
    assert await desk.redis.exists(lease)
    if not lease_lapses:
        await desk.redis.delete(lease)  # fast-forward the dead worker's lease (~11 s)
    w = worker(desk, pool)
    await asyncio.wait_for(w.async_run(), 60)
    assert w.jobs_complete == 1
    await expired_once(desk, ledger, trade)


async def test_a_job_whose_worker_is_killed_runs_again_and_acts_once(env, valkey_url):
    await _killed_mid_job(env, valkey_url, lease_lapses=False)


@pytest.mark.slow
async def test_a_killed_workers_job_runs_again_when_its_lease_lapses(env, valkey_url):
    await _killed_mid_job(env, valkey_url, lease_lapses=True)


async def test_the_sweep_cron_expires_what_no_job_covers(env):
    desk, ledger, _ = env
    desk.scheduler = None  # the job was never enqueued
    trade = await due_trade(desk)
    await asyncio.sleep(LEAD_MS / 1000 + 0.05)
    assert await p2p_jobs.p2p_sweep({"engine": desk.redis}) == 1
    await expired_once(desk, ledger, trade)
