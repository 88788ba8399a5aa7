"""Read-your-writes across the asynchronous workers.

The engine answers an order before the settler has moved its balances and before
the drain has recorded it in PostgreSQL; a transfer is answered once the payer is
debited, before the settler credits the payee. Each is a few milliseconds behind.
So that a client reading right after an answer sees its effect, the web node waits
(bounded) for the worker concerned:

- history reads (``GET /fills``, closed orders, candles): until the drain has
  committed what the markets' streams held when the request came
  (``Limits.history_wait``);
- balance reads: until the settler has applied what the market streams held
  (``Limits.settle_wait``);
- a transfer's answer, a P2P release: until the payee is credited
  (``Limits.settle_wait``).

If the worker is behind or down, the answer comes after the wait with what is there
(counted in ``hftx_catchup_timeouts_total``). A worker that was never deployed (no
stream has its consumer group or read position) is not waited for.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from engine import accounts
from workers import streams

SEEN_TTL_S = 10.0  # how long "this worker is deployed" is believed without a re-check


def _after_or_at(position: Any, target: str) -> bool:
    return position is not None and streams.parse_id(streams.text(position)) >= (
        streams.parse_id(target)
    )


class Catchup:
    """Waits for the drain and the settler on behalf of one web node."""

    def __init__(self, redis: Any, history_wait: float, settle_wait: float) -> None:
        self.redis = redis
        self.history_wait = history_wait
        self.settle_wait = settle_wait
        self._seen_until: dict[str, float] = {}  # worker -> monotonic time

    # -- what is waited for ------------------------------------------------------

    async def drained(self, market_ids: list[str]) -> bool:
        """Wait until the drain has committed what these markets' streams held now.
        True when it has (or there is nothing to wait for), False after the wait."""
        if self.history_wait <= 0 or not market_ids:
            return True
        keys = [streams.market_stream(m) for m in market_ids]
        targets = await streams.last_ids(self.redis, keys)
        if not targets or not await self._deployed("drain", keys, self._any_drain_group):
            return True

        async def pending(todo: dict[str, str]) -> dict[str, str]:
            done = await asyncio.gather(
                *(streams.drained_through(self.redis, s, p) for s, p in todo.items())
            )
            return {s: p for (s, p), ok in zip(todo.items(), done, strict=True) if not ok}

        return await self._wait(pending, targets, self.history_wait)

    async def settled(self, market_ids: list[str]) -> bool:
        """Wait until the settler has applied what these markets' streams held now."""
        if self.settle_wait <= 0 or not market_ids:
            return True
        keys = [streams.market_stream(m) for m in market_ids]
        pipe = self.redis.pipeline(transaction=False)
        for k in keys:  # one round trip when all is applied: the common case
            pipe.xrevrange(k, count=1)
            pipe.get(streams.settler_position_key(k))
        replies = await pipe.execute()
        targets = {
            k: streams.text(last[0][0])
            for k, last, pos in zip(keys, replies[::2], replies[1::2], strict=True)
            if last and not _after_or_at(pos, streams.text(last[0][0]))
        }
        if not targets or not await self._deployed("settler", keys, self._any_settler_position):
            return True

        async def pending(todo: dict[str, str]) -> dict[str, str]:
            got = await asyncio.gather(
                *(self.redis.get(streams.settler_position_key(s)) for s in todo)
            )
            return {s: p for (s, p), pos in zip(todo.items(), got, strict=True)
                    if not _after_or_at(pos, p)}  # fmt: skip

        return await self._wait(pending, targets, self.settle_wait)

    async def credited(self, payee: str, payer: str, position: str) -> bool:
        """Wait until ``payee`` is credited from ``payer``'s stream up to ``position``."""
        if self.settle_wait <= 0 or not await self._settler_runs(payer):
            return True
        cursor_key = accounts.account_keys(payee)[2]
        source = accounts.account_stream_key(payer)

        async def pending(todo: dict[str, str]) -> dict[str, str]:
            return {} if _after_or_at(await self.redis.hget(cursor_key, source), position) else todo

        return await self._wait(pending, {source: position}, self.settle_wait)

    async def outbox_credited(self, payer: str) -> bool:
        """Wait until every credit in ``payer``'s outbox is applied: the settler takes
        the payer off the outbox index then (a payer who keeps sending may stay on it
        for longer: then this times out)."""
        if self.settle_wait <= 0 or not await self._settler_runs(payer):
            return True

        async def pending(todo: dict[str, str]) -> dict[str, str]:
            listed = await self.redis.zscore(accounts.OUTBOX_KEY, payer)
            return todo if listed is not None else {}

        return await self._wait(pending, {payer: ""}, self.settle_wait)

    # -- how -----------------------------------------------------------------------

    @staticmethod
    async def _wait(
        pending: Callable[[dict[str, str]], Awaitable[dict[str, str]]],
        todo: dict[str, str],
        timeout_s: float,
    ) -> bool:
        """Re-check ``pending`` (1, 2, 4 ... 50 ms apart) until nothing is left."""
        deadline = time.monotonic() + timeout_s
        delay = 0.001
        while True:
            todo = await pending(todo)
            if not todo:
                return True
            if time.monotonic() + delay > deadline:
                return False
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)

    async def _deployed(
        self, worker: str, keys: list[str], found_in: Callable[[list[str]], Awaitable[bool]]
    ) -> bool:
        """Whether ``worker`` runs: it has left its mark on one of ``keys`` or, failing
        that, on any market stream. A stream it has not picked up yet (a new market:
        within moments) is waited for when it runs."""
        if time.monotonic() < self._seen_until.get(worker, 0.0):
            return True
        if not await found_in(keys):
            others = [streams.market_stream(streams.text(m))
                      for m in await self.redis.smembers(streams.MARKETS_SET)]  # fmt: skip
            if not await found_in([k for k in others if k not in keys]):
                return False
        self._seen_until[worker] = time.monotonic() + SEEN_TTL_S
        return True

    async def _settler_runs(self, payer: str) -> bool:
        payer_stream = accounts.account_stream_key(payer)
        return await self._deployed("settler", [payer_stream], self._any_settler_position)

    async def _any_drain_group(self, keys: list[str]) -> bool:
        found = await streams.groups_many(self.redis, keys)
        return any(g.name == streams.DRAIN_GROUP for gs in found.values() for g in gs)

    async def _any_settler_position(self, keys: list[str]) -> bool:
        positions = [streams.settler_position_key(k) for k in keys]
        return any(await asyncio.gather(*(self.redis.exists(k) for k in positions)))
