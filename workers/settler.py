"""Settler: applies market stream entries and transfer outboxes to accounts, exactly once.

``python -m workers.settler`` runs it (``REDIS_URL``; ``HFTX_SETTLER_INSTANCE`` names the
instance -- a restarted instance with the same name takes its leases back at once --
and ``HFTX_SETTLER_LEASE_MS`` sets the lease time). For every market stream ``{m:X}:ev`` (markets
from ``{g}:markets``) it reads entries in order, turns each into the operations of
every account concerned (maker, taker, the fee account) and applies them with one
``acct_settle`` call per account per batch, pipelined. For every payer in the
``{g}:outbox`` index it reads ``{u:P}:ev`` and credits ``transfer_out`` entries to the
payees (``acct_credit``). Then it publishes private ``balances`` pushes on
``hftx:u:<user>``. On a single node a batch costs two round trips: the account calls,
then the pushes and the new read position sent with the stream's next (blocking) read.
After a partial batch a market loop pauses ``coalesce_s`` (1 ms) so that entries
arriving one by one are read and applied together: fewer wake-ups and round trips, at
most 1 ms more lag.

Several instances may run: each stream is processed by the holder of its lease
(``<tag>:stl:lease``, renewed while working); the read position is ``<tag>:stl`` in
the stream's own hash tag. Per-account cursors make any re-application a no-op, so
a crash anywhere resumes exactly where it stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
from redis.exceptions import ResponseError

from api.redisbatch import batching
from engine import accounts, keys, registry
from engine import market as market_calls
from engine.pubsub import is_cluster, publish_many
from engine.settlement import (
    FEES_USER,
    CreditOp,
    MarketAssets,
    SettleOp,
    balance_push,
    may_settle,
    ops_for_entry,
)
from engine.types import Balance, EngineError
from ops import gc_policy
from workers import REDIS_DOWN
from workers.streams import SETTLER_POSITION, market_count

log = logging.getLogger("hftx.settler")

PUSH_CHANNEL = "hftx:u:{}"
PROBE_S = 0.1  # how often the run loop looks for new markets


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def _entry_ms(entry_id: str) -> int:
    return int(entry_id.split("-", 1)[0])


def _field(fields: dict[Any, Any], name: str) -> Any:
    value = fields.get(name)
    if value is None:
        value = fields.get(name.encode())
    return value


@dataclass(slots=True)
class Stats:
    """What a pass did: stream entries applied, account calls, lag per entry (ms)."""

    entries: int = 0
    calls: int = 0
    lags_ms: list[float] = field(default_factory=list)

    def add(self, other: Stats) -> None:
        self.entries += other.entries
        self.calls += other.calls
        self.lags_ms.extend(other.lags_ms)


@dataclass(slots=True)
class _Stream:
    """Local state of one stream: lease, read position and what is not sent yet.

    ``pos`` is the last entry applied; ``saved`` the position last written to
    ``<tag>:stl``; ``pushes`` the balance pushes of applied entries not published yet.
    Both go out with the stream's next read (or :meth:`Settler.flush`), in the same
    round trip.
    """

    key: str
    tag: str = ""
    pos: str | None = None  # None: read from Redis when the lease is (re)taken
    saved: str | None = None
    pushes: list[tuple[str, bytes]] = field(default_factory=list)
    leased_until: float = 0.0  # monotonic time until which our lease is known good
    client: Any = None  # what reads and applies it (see Settler._stream)

    def __post_init__(self) -> None:
        self.tag = self.key[: self.key.rindex(":")]


class Settler:
    """One settler instance. Drive it with :meth:`run`, or :meth:`settle_once` in tests."""

    def __init__(
        self,
        redis: Any,
        *,
        instance: str | None = None,
        batch: int = 500,
        lease_ms: int = 5000,
        refresh_s: float = 2.0,
        publish: bool = True,
        outbox_idle_s: float = 0.01,
        coalesce_s: float = 0.001,
    ) -> None:
        self.redis = redis
        # pause of a market loop after a partial batch: fewer wake-ups and round trips
        # under load, for at most that much more settlement lag
        self.coalesce_s = coalesce_s
        self.outbox_idle_s = outbox_idle_s  # longest wait between outbox polls
        self.instance = instance or f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self.batch = batch
        self.lease_ms = lease_ms
        self.refresh_s = refresh_s
        self.publish = publish
        self._cluster = is_cluster(redis)
        # commands packed by hiredis, one pipeline per round trip (api.redisbatch); a
        # market stream's blocking read gets a client of its own (Settler._stream)
        self._batched = batching(redis)
        self.recent_lags_ms: deque[float] = deque(maxlen=100_000)
        self._streams: dict[str, _Stream] = {}
        self._markets: dict[str, MarketAssets] = {}
        self._market_ids: list[str] = []
        self._scales: dict[str, int] = {}
        self._refreshed = 0.0

    # -- discovery -------------------------------------------------------------------

    async def refresh(self, force: bool = False) -> list[str]:
        """Market ids and asset scales, re-read every ``refresh_s``."""
        if force or time.monotonic() - self._refreshed > self.refresh_s:
            self._market_ids = await registry.market_ids(self._batched)
            self._scales = await registry.assets(self._batched)
            self._refreshed = time.monotonic()
        return self._market_ids

    async def _new_market(self) -> bool:
        """Whether the registry holds a market this settler has not seen (a cheap
        SCARD every ``PROBE_S``: a new market's first fills settle within moments)."""
        return await market_count(self._batched) != len(self._market_ids)

    async def _market(self, market_id: str) -> MarketAssets | None:
        m = self._markets.get(market_id)
        if m is None:
            cfg = await market_calls.read_config(self._batched, market_id)
            if cfg is None:
                return None
            m = MarketAssets(market_id, cfg["base"], cfg["quote"], int(cfg["bscale"]))
            self._markets[market_id] = m
        return m

    # -- leases ----------------------------------------------------------------------

    def _stream(self, key: str, blocking: bool = False) -> _Stream:
        s = self._streams.get(key)
        if s is None:
            s = self._streams[key] = _Stream(key)
            s.client = batching(self.redis) if blocking else self._batched
        return s

    async def _lease(self, s: _Stream) -> bool:
        """Take or renew the stream's lease (renewed when a third of it has passed)."""
        now = time.monotonic()
        if s.leased_until - now > self.lease_ms * 2 / 3000:
            return True
        got = await self._batched.fcall(
            "acct_lease", 1, s.tag + ":stl:lease", self.instance, self.lease_ms
        )
        if not got:
            s.leased_until = 0.0
            await self._forget_position(s)
            return False
        if s.leased_until < now:  # newly taken: another instance may have moved on
            await self._forget_position(s)
        s.leased_until = now + self.lease_ms / 1000
        return True

    async def _forget_position(self, s: _Stream) -> None:
        """Re-read the position from Redis next time; pushes owed are published (the
        position is not written: another instance may be further on)."""
        if s.pushes:
            await publish_many(self.redis, s.pushes)
            s.pushes = []
        s.pos = s.saved = None

    async def release_leases(self) -> None:
        """Write pending positions and pushes, then give up every lease held."""
        await self.flush()
        for s in self._streams.values():
            if s.leased_until > time.monotonic():
                await self.redis.fcall("acct_lease", 1, s.tag + ":stl:lease", self.instance, 0)
                s.leased_until = 0.0

    # -- pending positions and pushes ------------------------------------------------

    def _queue_pending(self, s: _Stream, pipe: Any) -> None:
        """Add the stream's unpublished pushes (not on a cluster: its pipeline refuses
        PUBLISH) and unsaved position to ``pipe``."""
        if not self._cluster:
            for channel, message in s.pushes:
                pipe.publish(channel, message)
        if s.pos is not None and s.pos != s.saved:
            pipe.fcall("acct_position", 1, s.tag + SETTLER_POSITION, s.pos)  # never back

    async def _sent(self, s: _Stream, pushes: list[tuple[str, bytes]], pos: str | None) -> None:
        """Record that ``pushes`` and ``pos`` reached Redis."""
        if self._cluster and pushes:
            await publish_many(self.redis, pushes)
        del s.pushes[: len(pushes)]  # ``pushes`` is a copy: what came since stays
        if pos is not None:
            s.saved = pos

    async def flush(self, streams: Iterable[_Stream] | None = None) -> None:
        """Write the pending positions of ``streams`` (default: all) and publish their
        pushes, in one round trip on a single node."""
        todo = self._streams.values() if streams is None else streams
        pending = [s for s in todo if s.pushes or s.pos != s.saved]
        if not pending:
            return
        pipe = self._batched.pipeline(transaction=False)
        sent = [(s, list(s.pushes), s.pos) for s in pending]
        for s in pending:
            self._queue_pending(s, pipe)
        await pipe.execute()
        for s, pushes, pos in sent:
            await self._sent(s, pushes, pos)

    async def _read(self, s: _Stream, block_ms: int | None) -> list[tuple[str, dict[Any, Any]]]:
        """Up to ``batch`` entries after ``s.pos``, in one round trip with the pending
        pushes and position of the stream (sent before the read blocks)."""
        if s.pos is None:
            s.pos = s.saved = _text(await self._batched.get(s.tag + SETTLER_POSITION) or b"0-0")
        pushes, pos = list(s.pushes), s.pos
        if self._cluster:  # a cluster pipeline refuses PUBLISH: flush, then read
            await self.flush([s])
            reply = await self.redis.xread({s.key: pos}, count=self.batch, block=block_ms)
        else:
            pipe = s.client.pipeline(transaction=False)
            self._queue_pending(s, pipe)
            pipe.xread({s.key: pos}, count=self.batch, block=block_ms)
            reply = (await pipe.execute())[-1]
            await self._sent(s, pushes, pos)
        if not reply:
            return []
        if isinstance(reply, dict):  # RESP3
            entries = next(iter(reply.values()))[0] if reply else []
        else:
            entries = reply[0][1]
        return [(_text(i), f) for i, f in entries]

    def _applied(self, s: _Stream, pos: str, balances: dict[str, list[Balance]]) -> None:
        """Entries up to ``pos`` are applied: queue the position and the pushes."""
        s.pos = pos
        if self.publish:
            s.pushes.extend(self._pushes(balances))

    # -- market streams --------------------------------------------------------------

    async def market_step(self, market_id: str, block_ms: int | None = None) -> Stats:
        """Apply up to ``batch`` new entries of one market stream (if we hold its lease).

        The new position and the balance pushes go out with the stream's next read
        (:meth:`run` reads again at once) or :meth:`flush`."""
        stats = Stats()
        s = self._stream(keys.market_stream(market_id), blocking=True)
        if not await self._lease(s):
            return stats
        m = await self._market(market_id)
        if m is None:
            return stats
        entries = await self._read(s, block_ms)
        if not entries:
            return stats
        per_user: dict[str, list[SettleOp]] = {}
        for _, fields in entries:
            raw = _field(fields, "e")
            if not may_settle(raw):
                continue
            for user, ops in ops_for_entry(m, int(_field(fields, "l")), orjson.loads(raw)).items():
                per_user.setdefault(user, []).extend(ops)
        calls = [accounts.settle_call(u, market_id, ops) for u, ops in per_user.items()]
        balances = await self._apply(s, calls, list(per_user))
        if balances is None:
            return stats
        done_ms = time.time() * 1000
        self._applied(s, entries[-1][0], balances)
        stats.entries = len(entries)
        stats.calls = len(calls)
        stats.lags_ms = [done_ms - _entry_ms(i) for i, _ in entries]
        self.recent_lags_ms.extend(stats.lags_ms)
        return stats

    async def _apply(
        self, s: _Stream, calls: list[tuple[str, list[Any]]], users: list[str]
    ) -> dict[str, list[Balance]] | None:
        """Run account calls in one pipeline; None (nothing advanced) if any failed."""
        if not calls:
            return {}
        pipe = s.client.pipeline(transaction=False)
        for fn, args in calls:
            pipe.fcall(fn, *args)
        replies = await pipe.execute(raise_on_error=False)
        out: dict[str, list[Balance]] = {}
        failed = False
        for user, reply in zip(users, replies, strict=True):
            try:
                out[user] = accounts.parse_applied(reply).balances
            except (EngineError, ResponseError) as exc:
                failed = True
                log.error("settling %s for %s failed: %s", s.key, user, exc)
        return None if failed else out

    def _pushes(self, balances: dict[str, list[Balance]]) -> list[tuple[str, bytes]]:
        out = []
        for user, rows in balances.items():
            channel = PUSH_CHANNEL.format(user)
            for b in rows:
                scale = self._scales.get(b.asset, 8)
                out.append((channel, orjson.dumps(balance_push(b, scale))))
        return out

    # -- transfer outboxes -----------------------------------------------------------

    async def outbox_step(self, payer: str, score: float) -> Stats:
        """Credit the payees of ``payer``'s new transfers; drop the payer from the index
        when caught up (unless it was bumped since ``score`` was read)."""
        stats = Stats()
        s = self._stream(accounts.account_stream_key(payer))
        if not await self._lease(s):
            return stats
        entries = await self._read(s, None)
        per_payee: dict[str, list[CreditOp]] = {}
        for entry_id, fields in entries:
            for ev in orjson.loads(_field(fields, "e")):
                if ev.get("e") == "transfer_out":
                    op = CreditOp(
                        entry_id, int(ev["ts"]), payer, ev["id"], ev["asset"], int(ev["amount"])
                    )
                    per_payee.setdefault(ev["to"], []).append(op)
        calls = [accounts.credit_call(p, payer, ops) for p, ops in per_payee.items()]
        balances = await self._apply(s, calls, list(per_payee))
        if balances is None:
            return stats
        if entries:
            done_ms = time.time() * 1000
            self._applied(s, entries[-1][0], balances)
            stats.entries = len(entries)
            stats.calls = len(calls)
            stats.lags_ms = [done_ms - _entry_ms(i) for i, _ in entries]
        if len(entries) < self.batch:
            await accounts.index_done(self._batched, "outbox", payer, score)
        return stats

    async def outboxes_once(self) -> Stats:
        """Credit every pending outbox; positions and pushes written before returning."""
        stats = Stats()
        pending = await accounts.index_members(self._batched, "outbox")
        for result in await asyncio.gather(*(self.outbox_step(u, sc) for u, sc in pending)):
            stats.add(result)
        if stats.entries:
            streams = (self._streams.get(accounts.account_stream_key(u)) for u, _ in pending)
            await self.flush([s for s in streams if s is not None])
        return stats

    # -- driving ---------------------------------------------------------------------

    async def settle_once(self) -> Stats:
        """One pass: up to ``batch`` entries of every stream this instance can lease."""
        markets = await self.refresh()
        stats = Stats()
        results = await asyncio.gather(*(self.market_step(m) for m in markets))
        for result in results:
            stats.add(result)
        stats.add(await self.outboxes_once())
        await self.flush()
        return stats

    async def drain(self, max_passes: int = 100_000) -> Stats:
        """Pass until a pass applies nothing (tests, benchmarks, shutdown)."""
        total = Stats()
        for _ in range(max_passes):
            stats = await self.settle_once()
            total.add(stats)
            if stats.entries == 0:
                break
        return total

    async def _market_loop(self, market_id: str, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                stats = await self.market_step(market_id, block_ms=100)
                if 0 < stats.entries < self.batch and self.coalesce_s > 0:
                    await asyncio.sleep(self.coalesce_s)  # let the next entries gather
                if (
                    stats.entries == 0
                    and self._stream(keys.market_stream(market_id)).leased_until == 0
                ):
                    await asyncio.sleep(self.lease_ms / 5000)  # someone else holds it
            except REDIS_DOWN as exc:
                log.warning("market %s: redis unavailable (%r), retrying", market_id, exc)
                await asyncio.sleep(0.5)
            except Exception:
                log.exception("market %s", market_id)
                await asyncio.sleep(0.5)

    async def _outbox_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                stats = await self.outboxes_once()
                if stats.entries == 0:  # a transfer's wake-up token, else the next poll
                    await self.redis.blpop([accounts.OUTBOX_WAKE_KEY], self.outbox_idle_s)
            except REDIS_DOWN as exc:
                log.warning("outboxes: redis unavailable (%r), retrying", exc)
                await asyncio.sleep(0.5)
            except Exception:
                log.exception("outboxes")
                await asyncio.sleep(0.5)

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Run until ``stop`` is set: one task per market stream plus the outboxes."""
        stop = stop or asyncio.Event()
        await self.redis.sadd(accounts.ACCOUNTS_KEY, FEES_USER)
        tasks: dict[str, asyncio.Task[None]] = {}
        outbox = asyncio.create_task(self._outbox_loop(stop))
        try:
            while not stop.is_set():
                try:
                    markets = await self.refresh(force=await self._new_market())
                except REDIS_DOWN as exc:  # the market loops wait for Redis too
                    log.warning("markets: redis unavailable (%r), retrying", exc)
                    markets = []
                for m in markets:
                    if m not in tasks:
                        tasks[m] = asyncio.create_task(self._market_loop(m, stop))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), PROBE_S)
        finally:
            stop.set()
            await asyncio.gather(outbox, *tasks.values(), return_exceptions=True)
            try:
                await self.release_leases()
            except REDIS_DOWN as exc:  # they lapse by themselves; positions are re-read
                log.warning("leases not released: redis unavailable (%r)", exc)


async def main() -> None:
    import signal

    from engine.functions import ensure_loaded
    from workers import connect

    logging.basicConfig(
        level=os.environ.get("HFTX_LOG_LEVEL", "INFO").upper(),
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    redis = await connect()
    await ensure_loaded(redis)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    log.info("settler started")
    gc_task = gc_policy.start()
    try:
        settler = Settler(
            redis,
            instance=os.environ.get("HFTX_SETTLER_INSTANCE") or None,
            lease_ms=int(os.environ.get("HFTX_SETTLER_LEASE_MS", "5000")),
        )
        await settler.run(stop)
    finally:
        if gc_task is not None:
            gc_task.cancel()
        await redis.aclose()


def parse_args(argv: list[str] | None = None) -> None:
    """``--help``; the settler is configured by the environment only."""
    import argparse

    argparse.ArgumentParser(
        prog="python -m workers.settler",
        description="The settler: market fills and transfers -> balances, exactly once."
        " Environment: REDIS_URL (default: the embedded Valkey), HFTX_LOG_LEVEL (INFO),"
        " HFTX_SETTLER_INSTANCE (a restarted instance with the same name takes its leases"
        " back at once; default: host:pid), HFTX_SETTLER_LEASE_MS (5000), HFTX_GC_FULL_S"
        " (60: seconds between full garbage collections; 0: CPython's automatic ones).",
    ).parse_args(argv)


if __name__ == "__main__":
    parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(main())
