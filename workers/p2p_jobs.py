"""arq jobs of P2P trading: each trade's payment-window expiry, and a sweep cron.

When a trade opens, :func:`arq_scheduler` enqueues ``p2p_expire(trade_id)`` with
``_job_id = "p2p-expire:<trade id>"`` (one job per trade) deferred until the payment
deadline. The job is idempotent: the expiry itself is one Lua call that acts once
(a trade already paid, released or cancelled is left alone), and its follow-ups
(buy-offer reservation, notifications) are idempotent too, so a job that fails after
a partial step is retried with :class:`arq.Retry` and a job whose worker died is run
again by arq once its in-progress lease lapses; either way the trade expires once.
``p2p_sweep`` (cron, every few seconds) expires what a lost job missed and repairs
reservations (``engine.p2p.P2P.sweep``).

Register with the worker: ``FUNCTIONS`` and ``CRON_JOBS`` below.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from typing import Any

from arq import Retry, cron, func

from engine.p2p import P2P, ExpiryScheduler
from engine.types import EngineError
from workers import skipped_while_redis_down

log = logging.getLogger("hftx.p2p_jobs")

EXPIRE_JOB = "p2p_expire"
SWEEP_EVERY_S = 5
MAX_TRIES = 20
EARLY_SLACK_MS = 50  # a job that runs before the deadline comes back this much after it


def job_id(trade_id: str) -> str:
    return f"p2p-expire:{trade_id}"


def _desk(ctx: dict[str, Any]) -> P2P:
    desk: P2P | None = ctx.get("p2p")
    if desk is None:
        desk = ctx["p2p"] = P2P(ctx["engine"])
    return desk


def _backoff(ctx: dict[str, Any]) -> timedelta:
    tries = int(ctx.get("job_try") or 1)
    return timedelta(seconds=min(60, 2 ** min(tries, 6) / 4))


async def p2p_expire(ctx: dict[str, Any], trade_id: str) -> str:
    """Expire the trade if it is still PENDING past its deadline; the outcome."""
    try:
        result = await _desk(ctx).expire_trade(trade_id)
    except EngineError as exc:
        if exc.code in ("INVALID_PARAM", "UNKNOWN_ORDER"):
            log.warning("p2p_expire %s: %s", trade_id, exc)
            return "refused"
        raise Retry(defer=_backoff(ctx)) from exc
    except Exception as exc:  # partial step: retry, the retry acts at most once more
        log.warning("p2p_expire %s failed, will retry: %r", trade_id, exc)
        raise Retry(defer=_backoff(ctx)) from exc
    if result.outcome == "not_due" and result.trade is not None:
        left = result.trade.expires_ts - time.time_ns() // 1_000_000
        raise Retry(defer=timedelta(milliseconds=max(0, left) + EARLY_SLACK_MS))
    return result.outcome


async def p2p_sweep(ctx: dict[str, Any]) -> int:
    """Expire due trades a job missed, settle stale reservations; trades expired."""
    result = await _desk(ctx).sweep()
    if result.expired or result.aborted:
        log.warning("p2p sweep: expired %s, aborted takes %s", result.expired, result.aborted)
    return len(result.expired)


def arq_scheduler(pool: Any) -> ExpiryScheduler:
    """An ``ExpiryScheduler`` for ``engine.p2p.P2P`` backed by an arq pool."""

    async def schedule(trade_id: str, deadline_ms: int) -> None:
        left = max(0, deadline_ms - time.time_ns() // 1_000_000)
        await pool.enqueue_job(
            EXPIRE_JOB, trade_id, _job_id=job_id(trade_id), _defer_by=timedelta(milliseconds=left)
        )

    return schedule


FUNCTIONS: list[Any] = [func(p2p_expire, name=EXPIRE_JOB, max_tries=MAX_TRIES, timeout=60)]
CRON_JOBS: list[Any] = [
    cron(
        skipped_while_redis_down(p2p_sweep),
        second=set(range(0, 60, SWEEP_EVERY_S)),
        run_at_startup=True,
        timeout=120,
    ),
]
