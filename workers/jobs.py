"""arq worker: ``arq workers.jobs.WorkerSettings``.

Jobs and crons of the background worker. Each job gets the engine's Redis client
(single node or cluster) as ``ctx["engine"]``; other areas add their jobs to
``FUNCTIONS`` / ``CRON_JOBS``: the hold reconciler, P2P expiries and sweep
(``workers.p2p_jobs``), the midnight (UTC) snapshot (``snapshots.snapshot``).
"""

from __future__ import annotations

from typing import Any

from arq import cron
from arq.connections import RedisSettings

from engine.functions import ensure_loaded
from snapshots import snapshot
from workers import connect, p2p_jobs, redis_url
from workers.reconciler import reconcile_holds

RECONCILE_EVERY_S = 3
HOLD_MIN_AGE_MS = 5000


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


async def shutdown(ctx: dict[str, Any]) -> None:
    await ctx["engine"].aclose()


FUNCTIONS: list[Any] = [*p2p_jobs.FUNCTIONS]
CRON_JOBS: list[Any] = [
    cron(reconcile, second=set(range(0, 60, RECONCILE_EVERY_S)), run_at_startup=True, timeout=60),
    *p2p_jobs.CRON_JOBS,
    *snapshot.cron_jobs(),
]


class WorkerSettings:
    functions = FUNCTIONS
    cron_jobs = CRON_JOBS
    on_startup = startup
    on_shutdown = shutdown
    redis_settings = RedisSettings.from_dsn(redis_url())
