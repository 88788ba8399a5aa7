"""Settler crash safety: kill -9 a settler process at random moments while orders
trade, restart it, drain; balances equal those of a run without kills."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import fakeredis
import redis.asyncio as aredis

from engine import accounts, addresses, registry
from engine.exchange import Exchange
from engine.functions import ensure_loaded
from engine.settlement import FEES_USER
from engine.types import Balance, EngineError, OrderRequest
from tests.test_accounts_support import BTC_USD, COIN, fund, setup_assets
from workers.settler import Settler

ROOT = Path(__file__).resolve().parent.parent
USERS = [f"u{i}" for i in range(5)]
STEPS = 600
KILLS = 20
INSTANCE = "crashy"


async def scenario(redis: Any, seed: int, pace: float = 0.0) -> None:
    """Deterministic trading: funds are ample so no order depends on settlement timing."""
    rng = random.Random(seed)
    ex = Exchange(redis)
    await setup_assets(redis)
    await registry.create_market(redis, BTC_USD, 1)
    for u in USERS:
        await fund(redis, u, "USD", 10_000_000 * COIN)
        await fund(redis, u, "BTC", 1_000 * COIN)
    to = {u: await addresses.deposit_address(redis, u, "USD") for u in USERS}
    for step in range(STEPS):
        user = rng.choice(USERS)
        roll = rng.random()
        side = rng.choice(["buy", "sell"])
        size = rng.randint(1, 50) * 100_000
        try:
            if roll < 0.75:
                price = (30_000 + rng.randint(-20, 20)) * COIN
                tif = rng.choice(["GTC", "GTC", "IOC"])
                req = OrderRequest("BTC-USD", side, "limit", size, price, time_in_force=tif)  # type: ignore[arg-type]
                await ex.place_order(user, req)
            elif roll < 0.85:
                await ex.place_order(user, OrderRequest("BTC-USD", side, "market", size))  # type: ignore[arg-type]
            elif roll < 0.93:
                await ex.cancel_all(user, "BTC-USD")
            else:
                payee = rng.choice([u for u in USERS if u != user])
                await accounts.transfer(redis, user, f"t{step}", "USD", size, to[payee])
        except EngineError as exc:
            assert exc.code == "INVALID_PARAM", exc  # e.g. a market buy on an empty book
        if pace:
            await asyncio.sleep(pace)
    await ex.close()


async def final_balances(redis: Any) -> dict[str, list[Balance]]:
    return {u: await accounts.balances(redis, u) for u in [*USERS, FEES_USER]}


async def reference(seed: int) -> dict[str, list[Balance]]:
    redis = fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer())
    await ensure_loaded(redis)
    await scenario(redis, seed)
    await Settler(redis, publish=False).drain()
    out = await final_balances(redis)
    await redis.aclose()
    return out


def start_settler(url: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "REDIS_URL": url, "HFTX_SETTLER_INSTANCE": INSTANCE, "LOGLEVEL": "ERROR"}
    return subprocess.Popen([sys.executable, "-m", "workers.settler"], cwd=ROOT, env=env)


async def test_settler_killed_at_random_moments_applies_everything_exactly_once(
    redis_real: Any, valkey_url: str
) -> None:
    seed = 7
    rng = random.Random(seed)
    producer = asyncio.create_task(scenario(redis_real, seed, pace=0.015))
    kills, busy_kills, last_pos = 0, 0, None
    proc = start_settler(valkey_url)
    try:
        while kills < KILLS or not producer.done():
            await asyncio.sleep(rng.uniform(0.25, 0.75))
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills += 1
            pos = await redis_real.get("{m:BTC-USD}:stl")
            busy_kills += pos != last_pos  # it was settling when it died
            last_pos = pos
            proc = start_settler(valkey_url)
        await producer
        deadline = time.monotonic() + 30
        while await _behind(redis_real) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    await Settler(redis_real, instance=INSTANCE, publish=False).drain()  # whatever is left
    assert kills >= KILLS and busy_kills >= KILLS // 2
    assert await final_balances(redis_real) == await reference(seed)


async def _behind(redis: Any) -> bool:
    """True while the settler has not read the whole market stream."""
    r: aredis.Redis = redis
    last = await r.xrevrange("{m:BTC-USD}:ev", count=1)
    pos = await r.get("{m:BTC-USD}:stl")
    return not last or pos is None or pos != last[0][0]
