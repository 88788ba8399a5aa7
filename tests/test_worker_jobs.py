"""Cron jobs meeting Redis down: one warning, the run skipped, no traceback."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from workers import skipped_while_redis_down


async def test_a_cron_run_that_meets_redis_down_is_skipped_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls: list[dict[str, Any]] = []

    async def sweep(ctx: dict[str, Any]) -> int:
        calls.append(ctx)
        if ctx.get("down"):
            raise RedisConnectionError("Connection refused")
        return 7

    job = skipped_while_redis_down(sweep)
    assert job.__name__ == "sweep"  # arq names cron jobs after the function
    assert await job({}) == 7
    with caplog.at_level(logging.WARNING, logger="hftx.jobs"):
        assert await job({"down": True}) is None
    assert [r.getMessage() for r in caplog.records] == [
        "sweep skipped: redis unavailable (ConnectionError('Connection refused'))"
    ]
    assert len(calls) == 2


async def test_other_errors_still_fail_the_run() -> None:
    async def broken(ctx: dict[str, Any]) -> int:
        raise ValueError("a bug")

    with pytest.raises(ValueError, match="a bug"):
        await skipped_while_redis_down(broken)({})
