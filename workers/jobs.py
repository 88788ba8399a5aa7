"""arq worker: ``arq workers.jobs.WorkerSettings``.

Jobs and crons of the background worker. Each job gets the engine's Redis client
(single node or cluster) as ``ctx["engine"]``; other areas add their jobs to
``FUNCTIONS`` / ``CRON_JOBS``: the hold reconciler, P2P expiries and sweep
(``workers.p2p_jobs``), the midnight (UTC) snapshot (``snapshots.snapshot``).
"""

from __future__ import annotations

import os
from typing import Any

from arq import cron
from arq.connections import RedisSettings
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from engine import ids
from engine.functions import ensure_loaded
from snapshots import snapshot
from workers import connect, p2p_jobs, redis_url, skipped_while_redis_down
from workers.reconciler import reconcile_holds

RECONCILE_EVERY_S = 3
HOLD_MIN_AGE_MS = 5000
REDIS_RETRIES = -1  # forever, like the settler and the drain (0.05 s doubling, at most 1 s)


def redis_settings(url: str | None = None) -> RedisSettings:
    """arq's connection to ``url``: a command (and the connect before it) that meets Redis
    down or restarting is retried with backoff until Redis is back, as the settler and
    the drain wait. arq's poll loop has no retry of its own: without this a Redis
    restart ends the worker (and ``./hftx run`` stops every process with it)."""
    settings = RedisSettings.from_dsn(url or redis_url())
    errors: list[type[Exception]] = [RedisConnectionError, RedisTimeoutError, OSError]
    backoff = ExponentialBackoff(cap=1.0, base=0.05)
    settings.retry = Retry(backoff, REDIS_RETRIES, tuple(errors))  # type: ignore[arg-type]
    settings.retry_on_error = errors
    return settings


async def reconcile(ctx: dict[str, Any]) -> int:
    """Release holds whose order never reached the market; returns how many."""
    seen = ctx.setdefault("reconciler_seen", set())
    if len(seen) > 1_000_000:
        seen.clear()
    result = await reconcile_holds(ctx["engine"], min_age_ms=HOLD_MIN_AGE_MS, seen=seen)
    return len(result.released)


async def startup(ctx: dict[str, Any]) -> None:
    ctx["engine"] = await connect()
    await ensure_loaded(ctx["engine"])
    if not os.environ.get("HFTX_NODE_ID"):  # ids of P2P notifications
        await ids.claim_node_id(ctx["engine"])


async def shutdown(ctx: dict[str, Any]) -> None:
    await ctx["engine"].aclose()


FUNCTIONS: list[Any] = [*p2p_jobs.FUNCTIONS]
CRON_JOBS: list[Any] = [
    cron(
        skipped_while_redis_down(reconcile),
        second=set(range(0, 60, RECONCILE_EVERY_S)),
        run_at_startup=True,
        timeout=60,
    ),
    *p2p_jobs.CRON_JOBS,
    *snapshot.cron_jobs(),
]


class WorkerSettings:
    functions = FUNCTIONS
    cron_jobs = CRON_JOBS
    on_startup = startup
    on_shutdown = shutdown
    redis_settings = redis_settings()
