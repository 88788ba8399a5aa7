"""PostgreSQL stopped under load, then started: matching goes on, the drain
exposes its lag, retries with backoff, and catches up; nothing lost, nothing twice."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psycopg
import pytest

from ops.bench.drain import EngineLoad
from ops.migrate import create_database, migrate
from ops.postgres import start_postgres
from ops.processes import free_port
from workers import candles


def gauge(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not exported")


async def fetch(url: str, sql: str) -> list[tuple]:
    async with await psycopg.AsyncConnection.connect(url) as conn:
        return await (await conn.execute(sql)).fetchall()


async def outage(redis, valkey_url: str, tmp_path: Path, down_s: float) -> None:
    pg = start_postgres(tmp_path / "pg", durable=False)
    proc = None
    try:
        db_url = create_database(pg.url, "outage")
        migrate(db_url)
        load = EngineLoad(redis, seed=21, prefix="pgdown-")
        await load.setup()
        port = free_port()
        env = dict(
            os.environ,
            REDIS_URL=valkey_url,
            DATABASE_URL=db_url,
            HFTX_LOG_LEVEL="ERROR",
            HFTX_DRAIN_METRICS_PORT=str(port),
        )
        proc = subprocess.Popen(
            [sys.executable, "-m", "workers.drain"], env=env, stderr=subprocess.DEVNULL
        )
        stop = asyncio.Event()
        slowest = 0.0

        async def trade() -> None:
            nonlocal slowest
            while not stop.is_set():
                t0 = time.perf_counter()
                await load.step()
                slowest = max(slowest, time.perf_counter() - t0)
                await asyncio.sleep(0.001)

        async def metrics() -> str:
            async with httpx.AsyncClient() as http:
                return (await http.get(f"http://127.0.0.1:{port}/metrics", timeout=2)).text

        trader = asyncio.create_task(trade())
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:  # drain up and committing
            await asyncio.sleep(0.2)
            if load.trades and await fetch(db_url, "SELECT 1 FROM trades LIMIT 1"):
                break
        pg.stop()
        trades_before = len(load.trades)
        lag_entries = lag_s = 0.0
        end = time.monotonic() + down_s
        while time.monotonic() < end:
            await asyncio.sleep(0.5)
            text = await metrics()
            lag_entries = max(lag_entries, gauge(text, "hftx_drain_lag_entries"))
            lag_s = max(lag_s, gauge(text, "hftx_drain_lag_seconds"))
        assert len(load.trades) > trades_before  # matching went on
        assert lag_entries > 0 and lag_s >= min(1.0, down_s / 2)  # lag exposed
        pg = start_postgres(tmp_path / "pg", port=pg.port, durable=False)
        await asyncio.sleep(0.5)
        stop.set()
        await trader
        assert slowest < 0.5, f"an engine call took {slowest:.3f}s"
        deadline = time.monotonic() + 60
        while True:
            n = (await fetch(db_url, "SELECT count(*) FROM trades"))[0][0]
            lag = gauge(await metrics(), "hftx_drain_lag_entries")
            if n == len(load.trades) and lag == 0:
                break
            assert time.monotonic() < deadline, (n, len(load.trades), lag)
            await asyncio.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        assert await metrics_or_empty(port) == ""  # stopped gracefully, endpoint gone
        stored = await fetch(db_url, "SELECT market, trade_id FROM trades ORDER BY trade_id")
        assert stored == load.trades
        final = dict(await fetch(db_url, "SELECT id, status FROM orders WHERE status <> 'NEW'"))
        assert final == load.final
        trades = await fetch(db_url, "SELECT market, trade_id, price, size, quote, ts FROM trades")
        want = {c.key: (c.volume, c.trades) for c in candles.aggregate(trades)}
        have = {
            (m, i, s): (int(v), n)
            for m, i, s, v, n in await fetch(
                db_url, "SELECT market, interval, start_ts, volume, trades FROM candles"
            )
        }
        assert have == want
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        pg.stop()


async def metrics_or_empty(port: int) -> str:
    try:
        async with httpx.AsyncClient() as http:
            return (await http.get(f"http://127.0.0.1:{port}/metrics", timeout=1)).text
    except httpx.HTTPError:
        return ""


async def test_postgres_down_briefly(redis_real, valkey_url, tmp_path):
    await outage(redis_real, valkey_url, tmp_path, down_s=3.0)


@pytest.mark.slow
async def test_postgres_down_30s(redis_real, valkey_url, tmp_path):
    await outage(redis_real, valkey_url, tmp_path, down_s=30.0)
