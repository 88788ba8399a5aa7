"""Hold reconciler: releases holds whose order never reached the market.

A crash between ``hold`` and ``place`` (DESIGN.md §3 step 6) leaves a hold with no
order. Every few seconds the reconciler looks at the holds of the accounts in the
holders index that are older than ``min_age_ms``; when the market has no record
of the order it tombstones the id on the market (a late ``place`` is then refused)
and releases the hold.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from engine import accounts, keys
from engine import market as market_calls

log = logging.getLogger("hftx.reconciler")


@dataclass(slots=True)
class ReconcileResult:
    released: list[tuple[str, str]] = field(default_factory=list)  # (user, order id)
    checked: int = 0


async def reconcile_holds(
    redis: Any,
    *,
    min_age_ms: int = 5000,
    now: int | None = None,
    seen: set[tuple[str, str]] | None = None,
) -> ReconcileResult:
    """One sweep. ``seen`` caches ``(market, order id)`` known to the market across
    sweeps so resting orders are checked once; it keeps only the holds that still
    exist (every holder is read each sweep), so it does not grow with every order
    that ever rested."""
    now = now or accounts.now_ms()
    seen = seen if seen is not None else set()
    result = ReconcileResult()
    live: set[tuple[str, str]] = set()
    for user, score in await accounts.index_members(redis, "holders"):
        holds = await accounts.holds(redis, user)
        if not holds:
            await accounts.index_done(redis, "holders", user, score)
            continue
        live.update((h.market, h.order_id) for h in holds)
        old = [h for h in holds if h.ts <= now - min_age_ms and (h.market, h.order_id) not in seen]
        if not old:
            continue
        result.checked += len(old)
        pipe = redis.pipeline(transaction=False)
        for h in old:
            pipe.hget(keys.market_order(h.market, h.order_id), "status")
        for h, status in zip(old, await pipe.execute(), strict=True):
            # a tombstone already there is a sweep cut short between tombstone and release
            placed = status is not None and status not in (b"ABORTED", "ABORTED")
            if placed or not await market_calls.tombstone(redis, h.market, h.order_id, now):
                seen.add((h.market, h.order_id))
                continue
            released = await accounts.release(redis, user, h.order_id, now=now)
            log.warning(
                "released orphan hold %s of %s (%d %s)", h.order_id, user, released, h.asset
            )
            result.released.append((user, h.order_id))
    seen.intersection_update(live)
    return result
