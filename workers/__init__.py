"""Background workers: settler, drain, arq jobs (see DESIGN.md §1)."""

from __future__ import annotations

import os
from typing import Any


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
