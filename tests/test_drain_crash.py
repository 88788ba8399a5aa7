"""Exactly once under crashes: SIGKILL the drain at random moments while trading.

The load is real engine calls (``engine.market``). Every other drain run gets
``HFTX_DRAIN_FAULT=after_commit:p``, which kills it between COMMIT and XACK;
the others are killed from outside at a random moment. Afterwards one more drain
catches up, and PostgreSQL must hold exactly the trades the engine emitted, the
final state of every finished order, and candles equal to an aggregation of the
trades (a re-delivered batch counted twice would show there).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from ops.bench.drain import EngineLoad
from workers import candles, streams
from workers.drain import Drain, DrainConfig


async def fetch(url: str, sql: str) -> list[tuple]:
    async with await psycopg.AsyncConnection.connect(url) as conn:
        return await (await conn.execute(sql)).fetchall()


async def reading(redis, stream: str, seen: set[str], proc: subprocess.Popen) -> None:
    """Wait until the new drain process has joined the consumer group (it reads)."""
    for _ in range(2000):
        try:
            names = {c["name"].decode() for c in await redis.xinfo_consumers(stream, "drain")}
        except Exception:  # group not created yet
            names = set()
        if names - seen:
            seen |= names
            return
        assert proc.poll() is None, "drain exited at start"
        await asyncio.sleep(0.01)
    raise AssertionError("drain did not start reading within 20 s")


async def crash_loop(redis, valkey_url, db_url, tmp_path: Path, kills: int, seed: int) -> None:
    rng = random.Random(seed)
    load = EngineLoad(redis, seed=seed, prefix=f"c{seed}-")
    await load.setup()
    stop = asyncio.Event()

    async def trade() -> None:
        while not stop.is_set():
            await load.step()
            if load.calls % 25 == 0:
                await asyncio.sleep(0.002)  # about 5-10k calls/s at most

    trader = asyncio.create_task(trade())
    base_env = dict(
        os.environ,
        REDIS_URL=valkey_url,
        DATABASE_URL=db_url,
        HFTX_LOG_LEVEL="ERROR",
        HFTX_DRAIN_CLAIM_IDLE_MS="300",
        HFTX_DRAIN_TRIM_KEEP_MS="0",  # trim as soon as acknowledged: trimming under crashes
        HFTX_DRAIN_TRIM_POSITIONS="",
    )
    fault_kills = external_kills = 0
    stream = f"{{m:{load.market.id}}}:ev"
    seen: set[str] = set()
    try:
        for i in range(kills):
            env = dict(base_env)
            if i % 2 == 0:
                env["HFTX_DRAIN_FAULT"] = "after_commit:0.25"
            log = tmp_path / f"drain-{i}.log"
            with open(log, "wb") as err:
                proc = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "workers.drain",
                        "--batch",
                        str(rng.choice((3, 40, 400))),
                    ],
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=err,
                )
            await reading(redis, stream, seen, proc)
            clock = asyncio.get_running_loop().time
            # fault runs die by themselves soon after they start committing
            deadline = clock() + (15.0 if "HFTX_DRAIN_FAULT" in env else rng.uniform(0.05, 0.8))
            while proc.poll() is None and clock() < deadline:
                await asyncio.sleep(0.01)
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                external_kills += 1
            while proc.poll() is None:
                await asyncio.sleep(0.01)
            assert proc.returncode == -signal.SIGKILL, log.read_text()
            if "hftx-drain-fault after_commit" in log.read_text():
                fault_kills += 1
    finally:
        stop.set()
        await trader
    assert fault_kills >= max(1, kills // 5), (fault_kills, external_kills)
    assert external_kills >= 1

    # a last drain catches up (entries pending for the killed consumers included)
    drain = Drain(redis, db_url, DrainConfig(claim_idle_ms=300, block_ms=20, maintain_s=0.05))
    await drain.catch_up(timeout_s=120)
    await drain.close()

    emitted = load.trades
    assert len(emitted) > 20 * kills
    stored = await fetch(db_url, "SELECT market, trade_id FROM trades ORDER BY trade_id")
    assert stored == emitted  # same set, no duplicates (and the PK forbids them anyway)
    stored_final = dict(await fetch(db_url, "SELECT id, status FROM orders WHERE status <> 'NEW'"))
    assert stored_final == load.final
    trades = await fetch(db_url, "SELECT market, trade_id, price, size, quote, ts FROM trades")
    want = {c.key: (c.volume, c.quote_volume, c.trades) for c in candles.aggregate(trades)}
    have = {
        (m, i, s): (int(v), int(q), n)
        for m, i, s, v, q, n in await fetch(
            db_url, "SELECT market, interval, start_ts, volume, quote_volume, trades FROM candles"
        )
    }
    assert have == want
    seqs = await fetch(db_url, "SELECT first_seq, last_seq FROM market_events ORDER BY first_seq")
    assert seqs[0][0] == 1
    assert all(a[1] + 1 == b[0] for a, b in itertools.pairwise(seqs))
    group = next(g for g in await streams.groups(redis, stream) if g.name == "drain")
    assert group.pending == 0 and group.lag == 0
    assert await redis.xlen(streams.dead_letter_key(stream)) == 0


async def test_drain_exactly_once_under_kills_quick(redis_real, valkey_url, db_url, tmp_path):
    await crash_loop(redis_real, valkey_url, db_url, tmp_path, kills=6, seed=11)


@pytest.mark.slow
async def test_drain_exactly_once_under_50_kills(redis_real, valkey_url, db_url, tmp_path):
    await crash_loop(redis_real, valkey_url, db_url, tmp_path, kills=60, seed=12)
