"""Read-your-writes across the asynchronous workers.

The engine answers an order before the settler has moved its balances and before
the drain has recorded it in PostgreSQL; a transfer (or a P2P release) is answered
once the payer is debited, before the settler credits the payee. Each is a few
milliseconds behind. So that a client reading right after an answer sees its
effect, the web node waits (bounded) for the worker concerned:

- a balance read: until the settler has applied what the streams of the markets the
  user has orders in (their holds) held when the request came
  (``Limits.settle_wait``);
- a transfer's answer, a P2P release: until the payee is credited
  (``Limits.settle_wait``);
- history reads (``GET /fills``, closed orders, candles): until the drain has
  committed what the markets' streams held (``Limits.history_wait``).

A wait never fails the request: if the worker is behind or down, or Redis errs, the
answer comes after the wait with what is there (counted in
``hftx_catchup_timeouts_total{worker}``). A worker that was never deployed (no stream
has its consumer group or read position) is not waited for.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from redis.exceptions import RedisError

from engine import accounts
from workers import streams

SEEN_TTL_S = 10.0  # how long "this worker is deployed" is believed without a re-check
UNSEEN_TTL_S = 1.0  # ... and "it is not", so a worker started later is soon waited for

Pending = dict[str, str]  # what is still waited for: key -> position


def _after_or_at(position: Any, target: str) -> bool:
    return position is not None and streams.parse_id(streams.text(position)) >= (
        streams.parse_id(target)
    )


class Catchup:
    """Waits for the drain and the settler on behalf of one web node."""

    def __init__(
        self, redis: Any, history_wait: float, settle_wait: float, timeouts: Any = None
    ) -> None:
        self.redis = redis
        self.history_wait = history_wait
        self.settle_wait = settle_wait
        self.timeouts = timeouts  # a Counter labelled by worker, or None
        self._verdicts: dict[str, tuple[bool, float]] = {}  # worker -> (deployed, until)

    # -- what is waited for ------------------------------------------------------

    async def drained(self, market_ids: list[str]) -> bool:
        """Wait until the drain has committed what these markets' streams hold now.
        True when it has (or nothing is to be waited for), False otherwise."""
        if self.history_wait <= 0 or not market_ids:
            return True
        return await self._guard("drain", self._drained(market_ids))

    async def settled_for(self, user: str) -> bool:
        """Wait until the settler has applied what the streams of the markets ``user``
        has holds in hold now: every fill or end of the user's orders not applied yet
        still has its hold (only the settler removes one)."""
        if self.settle_wait <= 0:
            return True
        return await self._guard("settler", self._settled_for(user))

    async def credited(self, payee: str, payer: str, position: str) -> bool:
        """Wait until ``payee`` is credited from ``payer``'s stream up to ``position``."""
        if self.settle_wait <= 0:
            return True
        return await self._guard("settler", self._credited(payee, payer, position))

    # -- the checks ----------------------------------------------------------------

    async def _drained(self, market_ids: list[str]) -> bool:
        keys = [streams.market_stream(m) for m in market_ids]
        targets = await streams.last_ids(self.redis, keys)
        if not targets or not await self._deployed("drain", keys, self._any_drain_group):
            return True

        async def pending(todo: Pending) -> Pending:
            done = await asyncio.gather(
                *(streams.drained_through(self.redis, s, p) for s, p in todo.items())
            )
            return {s: p for (s, p), ok in zip(todo.items(), done, strict=True) if not ok}

        return await self._wait(pending, await pending(targets), self.history_wait)

    async def _settled_for(self, user: str) -> bool:
        markets = sorted({h.market for h in await accounts.holds(self.redis, user)})
        if not markets:
            return True
        keys = [streams.market_stream(m) for m in markets]
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

        async def pending(todo: Pending) -> Pending:
            got = await asyncio.gather(
                *(self.redis.get(streams.settler_position_key(s)) for s in todo)
            )
            return {s: p for (s, p), pos in zip(todo.items(), got, strict=True)
                    if not _after_or_at(pos, p)}  # fmt: skip

        return await self._wait(pending, targets, self.settle_wait)

    async def _credited(self, payee: str, payer: str, position: str) -> bool:
        payer_stream = accounts.account_stream_key(payer)
        if not await self._deployed("settler", [payer_stream], self._any_settler_position):
            return True
        cursor_key = accounts.account_keys(payee)[2]

        async def pending(todo: Pending) -> Pending:
            got = await self.redis.hget(cursor_key, payer_stream)
            return {} if _after_or_at(got, position) else todo

        return await self._wait(pending, await pending({payer_stream: position}), self.settle_wait)

    # -- how -----------------------------------------------------------------------

    async def _guard(self, worker: str, wait: Awaitable[bool]) -> bool:
        """Run a wait; count it when it gave up (Redis errors included: the request
        goes on, and reads whatever is there)."""
        try:
            ok = await wait
        except (RedisError, OSError):
            ok = False
        if not ok and self.timeouts is not None:
            self.timeouts.labels(worker).inc()
        return ok

    @staticmethod
    async def _wait(
        pending: Callable[[Pending], Awaitable[Pending]], todo: Pending, timeout_s: float
    ) -> bool:
        """Re-check ``todo`` (still pending when called) 1, 2, 4 ... 50 ms apart until
        nothing is left or ``timeout_s`` has passed."""
        deadline = time.monotonic() + timeout_s
        delay = 0.001
        while todo:
            if time.monotonic() + delay > deadline:
                return False
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)
            todo = await pending(todo)
        return True

    async def _deployed(
        self, worker: str, keys: list[str], found_in: Callable[[list[str]], Awaitable[bool]]
    ) -> bool:
        """Whether ``worker`` runs: it has left its mark on one of ``keys`` or, failing
        that, on any market stream. A stream it has not picked up yet (a new market:
        within moments) is waited for when it runs."""
        verdict = self._verdicts.get(worker)
        if verdict is not None and time.monotonic() < verdict[1]:
            return verdict[0]
        found = await found_in(keys)
        if not found:
            others = [streams.market_stream(streams.text(m))
                      for m in await self.redis.smembers(streams.MARKETS_SET)]  # fmt: skip
            found = await found_in([k for k in others if k not in keys])
        self._verdicts[worker] = (found, time.monotonic() + (SEEN_TTL_S if found else UNSEEN_TTL_S))
        return found

    async def _any_drain_group(self, keys: list[str]) -> bool:
        found = await streams.groups_many(self.redis, keys)
        return any(g.name == streams.DRAIN_GROUP for gs in found.values() for g in gs)

    async def _any_settler_position(self, keys: list[str]) -> bool:
        positions = [streams.settler_position_key(k) for k in keys]
        return any(await asyncio.gather(*(self.redis.exists(k) for k in positions)))
