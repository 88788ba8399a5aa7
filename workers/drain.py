"""The drain: market and account streams -> PostgreSQL, exactly once, off the hot path.

    python -m workers.drain [--batch N] [--writers W] [--metrics-port P]

Consumer group ``drain`` on every ``{m:X}:ev`` and ``{u:U}:ev``. A batch of
entries becomes rows (:mod:`workers.rows`), written by :mod:`workers.pgwrite` in
ONE transaction (COPY, or COPY into temp tables + ``INSERT ... ON CONFLICT DO
NOTHING`` on engine-assigned keys when re-delivered); candles are updated from the
trades that insert actually added; then COMMIT, then XACK. A crash anywhere
re-delivers; nothing is written twice.

Entries of a consumer idle for ``claim_idle_ms`` are claimed (dead consumers).
An entry whose processing failed ``max_failures`` times (bad data, or a row the
database rejects, isolated by bisecting the batch), or that was delivered
``max_deliveries`` times (it kills its consumer), is parked in
``<stream>:dead`` and counted. Streams are trimmed below what every consumer
group acknowledged. With PostgreSQL down the drain retries with exponential
backoff (reading stops, so Redis keeps the backlog) and exposes its lag.

Fault injection for tests: ``HFTX_DRAIN_FAULT=after_commit:0.2,before_commit:0.1``
SIGKILLs the process at that point with that probability per batch.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import random
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, cast

import hiredis
import psycopg
from prometheus_client import Counter, Gauge, Histogram

from ops import gc_policy
from workers import REDIS_DOWN, streams
from workers.pgwrite import Converted, convert, prepare_connection, write_rows
from workers.rows import Rows
from workers.streams import Entry

# hiredis (a dependency: redis[hiredis]) packs any number of arguments; its stub says one
_pack = cast(Callable[[tuple[Any, ...]], bytes], hiredis.pack_command)

log = logging.getLogger("hftx.drain")

ENTRIES = Counter("hftx_drain_entries_total", "Stream entries committed to PostgreSQL", ["kind"])
TRADES = Counter("hftx_drain_trades_total", "Trades newly inserted")
DEAD = Counter("hftx_drain_dead_letters_total", "Entries parked in a dead-letter stream")
FAILURES = Counter("hftx_drain_entry_failures_total", "Failed attempts to process an entry")
DB_ERRORS = Counter("hftx_drain_db_errors_total", "Transient PostgreSQL errors (retried)")
LAG_ENTRIES = Gauge("hftx_drain_lag_entries", "Stream entries not yet committed")
LAG_SECONDS = Gauge("hftx_drain_lag_seconds", "Age of the oldest entry not yet committed")
BATCH_SECONDS = Histogram("hftx_drain_batch_seconds", "Write + ack time of one batch")


def consumer_name() -> str:
    """Unique per process (host, pid, random suffix)."""
    return f"{socket.gethostname()}-{os.getpid()}-{random.getrandbits(24):06x}"


@dataclass(slots=True)
class DrainConfig:
    group: str = streams.DRAIN_GROUP
    consumer: str = field(default_factory=consumer_name)
    count: int = 4000  # XREADGROUP COUNT per stream (bench: less CPU per trade than 1000)
    block_ms: int = 100
    claim_idle_ms: int = 5000
    max_failures: int = 3
    max_deliveries: int = 50
    refresh_s: float = 5.0  # re-read {g}:markets and {g}:accounts
    probe_s: float = 0.1  # ... or sooner when a market was added (SCARD {g}:markets)
    scan_s: float = 60.0  # SCAN for streams missing from those registries
    maintain_s: float = 1.0
    trim_s: float = 10.0
    trim_keep_ms: int = 600_000  # always keep entries younger than this
    trim_require: tuple[str, ...] = ("drain",)  # trim only if these groups exist
    trim_positions: tuple[str, ...] = (":stl",)  # group-less readers' positions (settler)
    backoff_min_s: float = 0.05
    backoff_max_s: float = 5.0
    queue_batches: int = 2
    writers: int = 2  # PostgreSQL connections writing batches concurrently in run()
    stop_grace_s: float = 3.0  # after stop: time to finish the batches in hand


# -- fault injection ------------------------------------------------------------------


def _parse_faults(spec: str | None) -> dict[str, float]:
    out: dict[str, float] = {}
    for part in (spec or "").split(","):
        if ":" in part:
            point, _, prob = part.partition(":")
            out[point.strip()] = float(prob)
    return out


_FAULTS = _parse_faults(os.environ.get("HFTX_DRAIN_FAULT"))


def fault(point: str) -> None:
    """SIGKILL this process at ``point`` with the configured probability."""
    p = _FAULTS.get(point)
    if p and random.random() < p:
        sys.stderr.write(f"hftx-drain-fault {point}\n")
        sys.stderr.flush()
        os.kill(os.getpid(), signal.SIGKILL)


async def ack(redis: Any, group: str, entries: list[Entry]) -> int:
    """XACK ``entries``: :func:`workers.streams.ack`, but on a single node with the
    commands packed by hiredis (C) on one pooled connection: redis-py's asyncio
    client packs each of a batch's thousands of ids in Python."""
    pool = getattr(redis, "connection_pool", None)
    if pool is None or streams.is_cluster(redis):
        return await streams.ack(redis, group, entries)
    by_stream: dict[str, list[str]] = {}
    for e in entries:
        by_stream.setdefault(e.stream, []).append(e.id)
    if not by_stream:
        return 0
    packed = [_pack(("XACK", stream, group, *ids)) for stream, ids in by_stream.items()]
    try:
        conn = await pool.get_connection()
    except TypeError:  # redis-py < 5.3 wants a command name
        conn = await pool.get_connection("XACK")
    try:
        await conn.send_packed_command(packed)
        return sum([int(await conn.read_response()) for _ in packed])
    except BaseException:
        await conn.disconnect()  # a reply may be left unread
        raise
    finally:
        await pool.release(conn)


def _entry_specific(exc: BaseException) -> bool:
    """A database error caused by the data of some entry (not by the database state)."""
    return isinstance(exc, psycopg.DataError | psycopg.IntegrityError)


# -- the worker ----------------------------------------------------------------------


class Drain:
    """One drain consumer. ``run()`` until ``stop`` is set; ``catch_up()`` for tests."""

    def __init__(
        self,
        redis: Any,
        database_url: str,
        config: DrainConfig | None = None,
        on_commit: Callable[[list[Entry]], Awaitable[None] | None] | None = None,
    ) -> None:
        self.redis = redis
        self._reader = streams.raw_reader(redis)
        self.database_url = database_url
        self.cfg = config or DrainConfig()
        self.on_commit = on_commit
        self.streams: list[str] = []
        self._known: set[str] = set()
        self._conns: dict[int, psycopg.AsyncConnection[Any]] = {}  # by writer slot
        self._inflight: dict[tuple[str, str], Entry] = {}
        self._retried: set[tuple[str, str]] = set()
        self._next_refresh = 0.0
        self._next_probe = 0.0
        self._markets_seen = -1
        self._next_scan = 0.0
        self._next_maintain = 0.0
        self._next_trim = 0.0
        self.committed = 0  # entries committed by this instance
        self.parked = 0

    # -- connections ------------------------------------------------------------

    async def _db(self, slot: int) -> psycopg.AsyncConnection[Any]:
        """The connection of writer ``slot`` (one transaction at a time each)."""
        conn = self._conns.get(slot)
        if conn is None or conn.closed:
            conn = await psycopg.AsyncConnection.connect(self.database_url, connect_timeout=5)
            try:
                await prepare_connection(conn)
            except BaseException:
                await conn.close()
                raise
            self._conns[slot] = conn
        return conn

    async def _drop_db(self, slot: int) -> None:
        conn = self._conns.pop(slot, None)
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()

    async def close(self) -> None:
        for slot in list(self._conns):
            await self._drop_db(slot)

    # -- streams ----------------------------------------------------------------

    async def refresh(self, force: bool = False) -> None:
        """Discover streams and create the consumer group on new ones: every
        ``refresh_s``, and within ``probe_s`` of a new market (web nodes' history
        reads wait for the drain on it)."""
        now = time.monotonic()
        if not force and now < self._next_refresh:
            if now < self._next_probe:
                return
            self._next_probe = now + self.cfg.probe_s
            if await streams.market_count(self.redis) == self._markets_seen:
                return
        markets = await streams.market_count(self.redis)
        scan = force or now >= self._next_scan
        found = await streams.discover(self.redis, scan=scan)
        for s in found:
            if s not in self._known:
                await streams.ensure_group(self.redis, s, self.cfg.group)
                self._known.add(s)
        self.streams = sorted(self._known)
        # only once all of it worked: after a Redis error the next call tries again
        self._markets_seen = markets
        self._next_refresh = now + self.cfg.refresh_s
        if scan:
            self._next_scan = now + self.cfg.scan_s

    async def read(self, block: bool = True) -> list[Entry]:
        """New entries of our streams (waiting up to ``block_ms`` if ``block``)."""
        wait_ms = self.cfg.block_ms if block else None
        if not self.streams:
            if wait_ms:
                await asyncio.sleep(wait_ms / 1000)
            return []
        got = await streams.read_group(
            self._reader, self.cfg.group, self.cfg.consumer, self.streams, self.cfg.count, wait_ms
        )
        if not got and wait_ms and streams.is_cluster(self.redis):
            await asyncio.sleep(min(wait_ms, 50) / 1000)
        return got

    # -- processing ----------------------------------------------------------------

    async def handle(
        self, entries: list[Entry], converted: Converted | None = None, slot: int = 0
    ) -> int:
        """Convert (unless done), write, commit and ack ``entries`` on the connection of
        writer ``slot``; the number committed."""
        for e in entries:
            self._inflight[(e.stream, e.id)] = e
        try:
            c = converted if converted is not None else convert(entries)
            for e, reason in c.bad:
                await self._failed(e, reason)
            return await self._write_isolating(c.good, c.rows, slot)
        finally:
            for e in entries:
                self._inflight.pop((e.stream, e.id), None)

    async def _failed(self, entry: Entry, reason: str) -> None:
        FAILURES.inc()
        n = await streams.record_failure(self.redis, entry.stream, entry.id)
        log.warning("entry %s %s failed (%d): %s", entry.stream, entry.id, n, reason)
        if n >= self.cfg.max_failures:
            await self._park(entry.stream, entry.id, reason)

    async def _park(self, stream: str, entry_id: str, reason: str) -> None:
        await streams.park(self.redis, stream, self.cfg.group, entry_id, reason)
        DEAD.inc()
        self.parked += 1
        log.error(
            "parked %s %s in %s: %s", stream, entry_id, streams.dead_letter_key(stream), reason
        )

    async def _write_isolating(
        self, entries: list[Entry], rows: Rows | None = None, slot: int = 0
    ) -> int:
        """Write ``entries``; on a data error split the batch to find the culprits."""
        if not entries:
            return 0
        try:
            rows = rows if rows is not None else convert(entries).rows
            return await self._write(entries, rows, slot)
        except psycopg.Error as exc:
            if not _entry_specific(exc):
                raise
            if len(entries) == 1:
                await self._failed(entries[0], f"{type(exc).__name__}: {exc}")
                return 0
            mid = len(entries) // 2
            return await self._write_isolating(
                entries[:mid], None, slot
            ) + await self._write_isolating(entries[mid:], None, slot)

    async def _write(self, entries: list[Entry], rows: Rows, slot: int) -> int:
        """One transaction for ``entries`` with retries on transient errors; then XACK."""
        attempt = 0
        started = time.perf_counter()
        while True:
            try:
                conn = await self._db(slot)
                async with conn.transaction():
                    new_trades = await write_rows(conn, rows)
                    fault("before_commit")
                break
            except psycopg.Error as exc:
                if _entry_specific(exc):
                    raise
                await self._backoff(attempt, exc, slot)
                attempt += 1
            except OSError as exc:
                await self._backoff(attempt, exc, slot)
                attempt += 1
        fault("after_commit")
        await self._redis_retry(lambda: ack(self.redis, self.cfg.group, entries))
        fault("after_ack")
        retried = self._retried
        cleared = [e for e in entries if (e.stream, e.id) in retried] if retried else []
        for e in cleared:  # an earlier attempt failed: forget its failure count
            await streams.clear_failures(self.redis, e.stream, [e.id])
        BATCH_SECONDS.observe(time.perf_counter() - started)
        TRADES.inc(new_trades)
        markets = sum(1 for e in entries if e.stream[1] == "m")
        ENTRIES.labels("m").inc(markets)
        ENTRIES.labels("u").inc(len(entries) - markets)
        self.committed += len(entries)
        if self.on_commit is not None:
            res = self.on_commit(entries)
            if asyncio.iscoroutine(res):
                await res
        return len(entries)

    async def _backoff(self, attempt: int, exc: BaseException, slot: int) -> None:
        DB_ERRORS.inc()
        await self._drop_db(slot)
        delay = min(self.cfg.backoff_max_s, self.cfg.backoff_min_s * 2**attempt)
        delay *= 0.5 + random.random() / 2
        log.warning("database unavailable (%s), retrying in %.2fs", exc.__class__.__name__, delay)
        # keep our pending entries from being claimed by other consumers meanwhile
        with contextlib.suppress(Exception):
            await self._touch_inflight()
        await asyncio.sleep(delay)

    async def _touch_inflight(self) -> None:
        by_stream: dict[str, list[str]] = {}
        for stream, entry_id in list(self._inflight):
            by_stream.setdefault(stream, []).append(entry_id)
        for stream, ids in by_stream.items():
            await streams.touch(self.redis, stream, self.cfg.group, self.cfg.consumer, ids)

    async def _redis_retry(self, fn: Callable[[], Awaitable[Any]]) -> Any:
        attempt = 0
        while True:
            try:
                return await fn()
            except REDIS_DOWN as exc:
                delay = min(self.cfg.backoff_max_s, self.cfg.backoff_min_s * 2**attempt)
                log.warning("redis unavailable (%s), retrying in %.2fs", exc, delay)
                attempt += 1
                await asyncio.sleep(delay)

    # -- maintenance: claims, dead letters, lag, trim ---------------------------------

    async def maintain(self, force: bool = False, slot: int = 0) -> int:
        """Claim idle pending entries (dead consumers, earlier failures) and process
        them (on writer ``slot``'s connection), park poison ones, trim. Entries processed."""
        now = time.monotonic()
        if not force and now < self._next_maintain:
            return 0
        self._next_maintain = now + self.cfg.maintain_s
        done = 0
        infos = await streams.groups_many(self.redis, self.streams)
        for stream, gs in infos.items():
            if any(g.name == self.cfg.group and g.pending for g in gs):
                done += await self._claim_stream(stream, slot)
        if force or now >= self._next_trim:
            self._next_trim = now + self.cfg.trim_s
            for stream in self.streams:
                await streams.trim(
                    self.redis,
                    stream,
                    self.cfg.trim_require,
                    self.cfg.trim_keep_ms,
                    self.cfg.trim_positions,
                )
        return done

    async def update_lag(self) -> tuple[int, float]:
        """Set the lag gauges: entries not yet committed, age (s) of the oldest one."""
        total = 0
        oldest_ms: int | None = None
        infos = await streams.groups_many(self.redis, self.streams)
        for stream, gs in infos.items():
            for g in gs:
                if g.name != self.cfg.group or not (g.pending or g.lag):
                    continue
                total += g.pending + (g.lag or 0)
                _, oldest = await streams.lag(self.redis, stream, self.cfg.group)
                if oldest is not None and (oldest_ms is None or oldest < oldest_ms):
                    oldest_ms = oldest
        age = max(0.0, time.time() - oldest_ms / 1000) if oldest_ms else 0.0
        LAG_ENTRIES.set(total)
        LAG_SECONDS.set(age)
        return total, age

    async def _claim_stream(self, stream: str, slot: int) -> int:
        idle = self.cfg.claim_idle_ms
        pend = await streams.pending_idle(self.redis, stream, self.cfg.group, idle, self.cfg.count)
        pend = [p for p in pend if (stream, p.id) not in self._inflight]
        if not pend:
            return 0
        fails = await streams.failures(self.redis, stream, [p.id for p in pend])
        claim_ids = []
        for p, n in zip(pend, fails, strict=True):
            if n >= self.cfg.max_failures:
                await self._park(stream, p.id, f"failed {n} times")
            elif p.deliveries >= self.cfg.max_deliveries:
                await self._park(stream, p.id, f"delivered {p.deliveries} times")
            else:
                claim_ids.append(p.id)
        claimed = await streams.claim(
            self.redis, stream, self.cfg.group, self.cfg.consumer, idle, claim_ids
        )
        if not claimed:
            return 0
        keys = {(e.stream, e.id) for e in claimed}
        self._retried |= keys
        try:
            return await self.handle(claimed, None, slot)
        finally:
            self._retried -= keys

    # -- loops ------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Process until ``stop`` is set, then finish the batches already read within
        ``stop_grace_s`` (a batch stuck on a Redis or PostgreSQL outage stays pending).

        One reader reads and converts batches into a small queue; ``writers`` tasks,
        each with its own PostgreSQL connection, take batches from it and write,
        commit and ack them, so that one batch is parsed while another is committed.
        A writer takes every batch queued at that moment into one transaction: when
        PostgreSQL falls behind, transactions grow instead of the lag.
        Batches commit in any order: every write is keyed by the engine and merges
        commutatively, as with several drain processes."""
        stop = stop or asyncio.Event()
        queue: asyncio.Queue[tuple[list[Entry], Converted] | None]
        queue = asyncio.Queue(max(1, self.cfg.queue_batches))

        async def reader() -> None:  # reads and converts while the writers wait on PostgreSQL
            while not stop.is_set():
                await self._redis_retry(self.refresh)
                entries = await self._redis_retry(self.read)
                for e in entries:
                    self._inflight[(e.stream, e.id)] = e
                await queue.put((entries, convert(entries)))
            await queue.put(None)

        async def writer(slot: int) -> None:
            while True:
                item = await queue.get()
                if item is None:
                    queue.put_nowait(None)  # the end, for the other writers too
                    return
                entries, converted = item
                while not queue.empty():  # read meanwhile: one transaction for all
                    more = queue.get_nowait()
                    if more is None:
                        queue.put_nowait(None)
                        break
                    entries, converted = entries + more[0], converted.merged(more[1])
                if entries:
                    await self.handle(entries, converted, slot)
                await self._redis_retry(lambda: self.maintain(slot=slot))

        async def monitor() -> None:  # Redis only: keeps reporting while PostgreSQL is down
            while not stop.is_set():
                with contextlib.suppress(*REDIS_DOWN):
                    await self.update_lag()
                await asyncio.sleep(self.cfg.maintain_s)

        task = asyncio.create_task(reader())
        lag_task = asyncio.create_task(monitor())
        writing = [asyncio.create_task(writer(i)) for i in range(max(1, self.cfg.writers))]
        work: asyncio.Future[Any] = asyncio.gather(task, *writing)  # fails as one fails
        stopping: asyncio.Future[Any] = asyncio.create_task(stop.wait())
        try:  # until every task ended, or one failed
            await asyncio.wait([work, stopping], return_when=asyncio.FIRST_COMPLETED)
            if not work.done():
                # stop asked: finish the batches in hand, unless Redis or PostgreSQL is
                # down and they would retry forever; what is not acked stays pending in
                # the streams and is written (idempotently) by the next drain
                await asyncio.wait([work], timeout=self.cfg.stop_grace_s)
                if not work.done():
                    log.warning("stopping with batches unwritten: they stay pending")
            if work.done():
                work.result()
        finally:
            stop.set()
            for t in (task, lag_task, *writing, stopping):
                if not t.done():
                    t.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await t
            await asyncio.wait([work])  # its outcome: raised above, or our cancel
            if not work.cancelled():
                work.exception()
            await self.close()

    async def catch_up(self, timeout_s: float = 60.0, idle_rounds: int = 2) -> int:
        """Process everything currently in the streams, including entries pending
        for dead consumers once idle; return entries committed. For tests,
        benchmarks and ``restore``."""
        deadline = time.monotonic() + timeout_s
        total = 0
        quiet = 0
        while quiet < idle_rounds:
            if time.monotonic() > deadline:
                raise TimeoutError("drain did not catch up")
            await self.refresh(force=True)
            entries = await self.read(block=False)
            n = await self.handle(entries) if entries else 0
            n += await self.maintain(force=True)
            total += n
            if n == 0 and not entries and await self._settled():
                quiet += 1
            else:
                quiet = 0
            if n == 0 and not entries:
                await asyncio.sleep(0.05)
        return total

    async def _settled(self) -> bool:
        infos = await streams.groups_many(self.redis, self.streams)
        return not any(
            g.name == self.cfg.group and (g.pending or g.lag) for gs in infos.values() for g in gs
        )


# -- command line -----------------------------------------------------------------------


async def _main(args: argparse.Namespace) -> None:
    from ops.settings import get_settings
    from workers import connect

    settings = get_settings()
    database_url = str(settings.database_url)
    redis: Any = await connect(str(settings.redis_url))  # a cluster client on a cluster
    cfg = DrainConfig(
        count=args.batch,
        writers=args.writers,
        claim_idle_ms=args.claim_idle_ms,
        trim_keep_ms=args.trim_keep_ms,
        trim_require=tuple(x for x in args.trim_require.split(",") if x),
        trim_positions=tuple(x for x in args.trim_positions.split(",") if x),
    )
    if args.consumer:
        cfg.consumer = args.consumer
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if args.metrics_port:
        from prometheus_client import start_http_server

        start_http_server(args.metrics_port)
    drain = Drain(redis, database_url, cfg)
    log.info("drain %s starting", cfg.consumer)
    # no young collections either (ops.gc_policy): batches live until written
    gc_task = gc_policy.start(young=False)
    try:
        await drain.run(stop)
    finally:
        if gc_task is not None:
            gc_task.cancel()
        await redis.aclose()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        prog="python -m workers.drain",
        description=__doc__.split("\n")[0]
        + " Each option's default comes from the HFTX_DRAIN_* variable named in its help;"
        " REDIS_URL and DATABASE_URL as for every process, HFTX_LOG_LEVEL (INFO),"
        " HFTX_GC_FULL_S (60: seconds between garbage collections, the only ones; 0: CPython's).",
    )
    env = os.environ.get

    def option(name: str, default: str, help: str, number: bool = True) -> None:
        var = "HFTX_DRAIN_" + name.upper().replace("-", "_")
        value = env(var, default)
        p.add_argument(
            f"--{name}",
            type=int if number else str,
            default=int(value) if number else value,
            help=f"{help} ({var}, default {default or 'none'})",
        )

    option("batch", "4000", "stream entries read per batch")
    option("writers", "2", "PostgreSQL connections committing in parallel")
    option("claim-idle-ms", "5000", "take over a dead drain's entries after this idle time")
    option("trim-keep-ms", "600000", "keep committed stream entries this long")
    option(
        "trim-require",
        "drain",
        "comma-separated consumer groups that must exist before a stream is trimmed",
        number=False,
    )
    option(
        "trim-positions",
        ":stl",
        "comma-separated key suffixes of group-less readers' positions (the settler's)"
        " that a trim stays below",
        number=False,
    )
    option("consumer", "", "consumer name; none: host-pid-random", number=False)
    option("metrics-port", "0", "serve Prometheus metrics on this port (0: off)")
    args = p.parse_args(argv)
    logging.basicConfig(
        level=env("HFTX_LOG_LEVEL", "INFO"), format="%(asctime)s %(name)s %(levelname)s %(message)s"
    )
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(_main(args))


if __name__ == "__main__":
    main()
