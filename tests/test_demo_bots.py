"""ops.demo: a demo bot that fails is started again (pure, no exchange)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from ops.demo import restart_failed


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
