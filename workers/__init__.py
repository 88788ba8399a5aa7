"""Background workers: settler, drain, arq jobs (see DESIGN.md §1)."""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from redis.exceptions import BusyLoadingError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

# Redis down, restarting or loading its AOF: wait and go on, no traceback
REDIS_DOWN = (RedisConnectionError, RedisTimeoutError, BusyLoadingError, OSError)

T = TypeVar("T")


def redis_url() -> str:
    """``REDIS_URL`` from ``ops.settings`` when present, else the environment."""
    try:
        from ops.settings import Settings  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    return str(Settings().redis_url)


async def connect(url: str | None = None) -> Any:
    """An async client for ``url``: a cluster client when the server runs in cluster mode."""
    import redis.asyncio as aredis
    from redis.asyncio.cluster import RedisCluster

    url = url or redis_url()
    probe = aredis.Redis.from_url(url)
    try:
        info = await probe.info("cluster")
    finally:
        await probe.aclose()
    if info.get("cluster_enabled"):
        cluster = RedisCluster.from_url(url)
        await cluster.initialize()
        return cluster
    return aredis.Redis.from_url(url)


def skipped_while_redis_down(
    job: Callable[..., Coroutine[Any, Any, T]],
) -> Callable[..., Coroutine[Any, Any, T | None]]:
    """An arq cron job that, meeting Redis down, logs one warning and skips this run
    (the next run comes a few seconds later) instead of logging a traceback."""

    @functools.wraps(job)
    async def run(ctx: dict[str, Any], *args: Any, **kwargs: Any) -> T | None:
        try:
            return await job(ctx, *args, **kwargs)
        except REDIS_DOWN as exc:
            logging.getLogger("hftx.jobs").warning(
                "%s skipped: redis unavailable (%r)", job.__name__, exc
            )
            return None

    return run
