"""Read-your-writes for the history routes.

Trades and finished orders reach PostgreSQL through the drain, usually a few
milliseconds after the engine produced them. A history read first waits until the
drain has committed every entry that the market streams it reads held when the
request arrived, so a fill the caller was just told about is in the answer. The wait
is bounded (``Limits.history_wait``, 1 s by default): if the drain is behind or
down, the answer is what PostgreSQL has by then (counted in
``hftx_history_stale_total``).

Without a drain (no stream has its consumer group), nothing is waited for.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from workers import streams

DRAIN_SEEN_TTL_S = 10.0  # how long "a drain is deployed" is believed without a re-check


class Catchup:
    """Waits for the drain on behalf of one web node."""

    def __init__(self, redis: Any, timeout_s: float) -> None:
        self.redis = redis
        self.timeout_s = timeout_s
        self._drain_seen_until = 0.0

    async def markets(self, market_ids: list[str]) -> bool:
        """Wait until the drain has committed what these markets' streams held now.
        True when it has, False when the wait timed out (or was skipped: no drain)."""
        if self.timeout_s <= 0 or not market_ids:
            return True
        keys = [streams.market_stream(m) for m in market_ids]
        targets = await streams.last_ids(self.redis, keys)
        if not targets or not await self._drain_deployed(keys):
            return True
        deadline = time.monotonic() + self.timeout_s
        delay = 0.002
        while True:
            done = await asyncio.gather(
                *(streams.drained_through(self.redis, s, p) for s, p in targets.items())
            )
            targets = {s: p for (s, p), ok in zip(targets.items(), done, strict=True) if not ok}
            if not targets:
                return True
            if time.monotonic() + delay > deadline:
                return False
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)

    async def _drain_deployed(self, keys: list[str]) -> bool:
        """Whether a drain runs: one of ``keys``, or of all market streams, has its
        group. A new stream gets the group within moments of the drain seeing it, so
        a stream without one is waited for when a drain runs."""
        if time.monotonic() < self._drain_seen_until:
            return True
        found = await streams.groups_many(self.redis, keys)
        if not any(g.name == streams.DRAIN_GROUP for gs in found.values() for g in gs):
            others = await self.redis.smembers(streams.MARKETS_SET)
            more = [streams.market_stream(streams.text(m)) for m in others]
            found = await streams.groups_many(self.redis, [k for k in more if k not in keys])
            if not any(g.name == streams.DRAIN_GROUP for gs in found.values() for g in gs):
                return False
        self._drain_seen_until = time.monotonic() + DRAIN_SEEN_TTL_S
        return True
