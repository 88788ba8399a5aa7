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
import pytest
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
MIN_STEPS = 300
KILLS = 20  # the slow variant; the default run kills 5 times
INSTANCE = "crashy"


async def scenario(
    redis: Any, seed: int, *, steps: int | None = None, pace: float = 0.0, until: Any = None
) -> int:
    """Deterministic trading: funds are ample so no order depends on settlement timing.

    Runs ``steps`` steps, or at least MIN_STEPS and until the ``until`` event is set;
    returns the number of steps.
    """
    rng = random.Random(seed)
    ex = Exchange(redis)
    await setup_assets(redis)
    await registry.create_market(redis, BTC_USD, 1)
    for u in USERS:
        await fund(redis, u, "USD", 10_000_000 * COIN)
        await fund(redis, u, "BTC", 1_000 * COIN)
    to = {u: await addresses.deposit_address(redis, u, "USD") for u in USERS}
    step = 0
    while step < steps if steps is not None else (step < MIN_STEPS or not until.is_set()):
        step += 1
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
    return step


async def final_balances(redis: Any) -> dict[str, list[Balance]]:
    return {u: await accounts.balances(redis, u) for u in [*USERS, FEES_USER]}


async def reference(seed: int, steps: int) -> dict[str, list[Balance]]:
    redis = fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer())
    await ensure_loaded(redis)
    await scenario(redis, seed, steps=steps)
    await Settler(redis, publish=False).drain()
    out = await final_balances(redis)
    await redis.aclose()
    return out


def start_settler(url: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "REDIS_URL": url, "HFTX_SETTLER_INSTANCE": INSTANCE}
    env["HFTX_LOG_LEVEL"] = "ERROR"  # the settler's variable, as every process's
    return subprocess.Popen([sys.executable, "-m", "workers.settler"], cwd=ROOT, env=env)


@pytest.mark.parametrize("kills_wanted", [5, pytest.param(KILLS, marks=pytest.mark.slow)])
async def test_settler_killed_at_random_moments_applies_everything_exactly_once(
    redis_real: Any, valkey_url: str, kills_wanted: int
) -> None:
    seed = 7
    rng = random.Random(seed)
    enough = asyncio.Event()
    producer = asyncio.create_task(scenario(redis_real, seed, pace=0.01, until=enough))
    kills = busy_kills = 0
    proc = None
    try:
        while not producer.done():
            proc = start_settler(valkey_url)
            # let it start and apply something, then kill it at a random moment
            pos = await _pos(redis_real)
            deadline = time.monotonic() + 10
            while await _pos(redis_real) == pos and time.monotonic() < deadline:
                await asyncio.sleep(0.005)
            await asyncio.sleep(rng.uniform(0, 0.3))
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills += 1
            busy_kills += await _pos(redis_real) != pos
            if busy_kills >= kills_wanted:
                enough.set()
        steps = await producer
        proc = start_settler(valkey_url)
        deadline = time.monotonic() + 30
        while await _behind(redis_real) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
    await Settler(redis_real, instance=INSTANCE, publish=False).drain()  # whatever is left
    assert busy_kills >= kills_wanted
    assert await final_balances(redis_real) == await reference(seed, steps)


async def _pos(redis: Any) -> Any:
    return await redis.get("{m:BTC-USD}:stl")


async def _behind(redis: Any) -> bool:
    """True while the settler has not read the whole market stream."""
    r: aredis.Redis = redis
    last = await r.xrevrange("{m:BTC-USD}:ev", count=1)
    pos = await r.get("{m:BTC-USD}:stl")
    return not last or pos is None or pos != last[0][0]
