"""ops.demo: a demo bot that fails is started again; the bots outlive a Redis restart."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aredis
from redis.exceptions import RedisError

from ops.demo import LEASE_KEY, keep_lease, restart_failed
from ops.valkey import start_valkey


async def test_a_failed_bot_is_restarted_and_the_others_left_alone(
    caplog: pytest.LogCaptureFixture,
) -> None:
    runs = {"mm": 0, "rt": 0, "done": 0}
    forever = asyncio.Event()

    async def flaky() -> None:
        runs["mm"] += 1
        if runs["mm"] == 1:
            raise RuntimeError("web node not ready")
        await forever.wait()

    async def healthy() -> None:
        runs["rt"] += 1
        await forever.wait()

    async def finished() -> None:  # ended by itself (stop set): not restarted
        runs["done"] += 1

    factories: dict[str, Any] = {"mm": flaky, "rt": healthy, "done": finished}
    tasks = {name: asyncio.create_task(make(), name=name) for name, make in factories.items()}
    await asyncio.sleep(0.01)
    first_rt = tasks["rt"]
    with caplog.at_level(logging.WARNING, logger="hftx.demo"):
        assert restart_failed(tasks, factories) == ["mm"]
    assert [r.getMessage() for r in caplog.records] == [
        "bot mm stopped: RuntimeError('web node not ready'); restarting it"
    ]
    await asyncio.sleep(0.01)
    assert runs == {"mm": 2, "rt": 1, "done": 1}
    assert tasks["rt"] is first_rt and not tasks["mm"].done()
    assert restart_failed(tasks, factories) == []  # running again: nothing more logged
    assert len(caplog.records) == 1
    for task in tasks.values():
        task.cancel()
    await asyncio.gather(*tasks.values(), return_exceptions=True)


async def test_the_bots_outlive_a_redis_restart(tmp_path: Path) -> None:
    """A soak run: Valkey killed and started again, the web node reconnected, but
    the demo bots never traded again (the lease renewal's ConnectionError ended the
    demo task and stopped every bot)."""
    vk = start_valkey(tmp_path, persistent=True)
    client = aredis.Redis(host=vk.host, port=vk.port)
    forever = asyncio.Event()

    async def bot() -> None:
        await forever.wait()

    tasks: dict[str, Any] = {"mm": asyncio.create_task(bot())}
    factories: dict[str, Any] = {"mm": bot}
    keeper = asyncio.create_task(keep_lease(client, "node-1", tasks, factories, every=0.05))
    try:
        await asyncio.sleep(0.2)
        assert await client.get(LEASE_KEY) == b"node-1"
        await client.shutdown()
        await asyncio.to_thread(vk.process.proc.wait, 15)
        await asyncio.sleep(0.3)  # a few renewals meet Redis down
        assert not keeper.done() and not tasks["mm"].done()
        vk = start_valkey(tmp_path, port=vk.port, persistent=True)
        for _ in range(100):
            await asyncio.sleep(0.05)
            with contextlib.suppress(RedisError):
                if await client.get(LEASE_KEY) == b"node-1" and await client.ttl(LEASE_KEY) > 0:
                    break
        assert await client.get(LEASE_KEY) == b"node-1"  # renewed after the restart
        assert not keeper.done() and not tasks["mm"].done()
    finally:
        keeper.cancel()
        tasks["mm"].cancel()
        await asyncio.gather(keeper, tasks["mm"], return_exceptions=True)
        await client.aclose()
        vk.stop()
