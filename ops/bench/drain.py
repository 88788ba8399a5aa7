"""Drain benchmark, and the load generators the drain tests share.

    python -m ops.bench.drain [--quick] [--baseline DIR] [--rounds N]
                              [--batches 1000,4000] [--drains 1,2] [--writers 1,2]

Starts its own Valkey and PostgreSQL (loopback, temp dirs, PostgreSQL durable:
fsync on), then

1. throughput: for each batch size (XREADGROUP COUNT) and number of drain
   processes (1..3: several instances share the consumer group), preloads a
   backlog of synthetic market stream entries (exactly the engine's format,
   docs/internals.md: per trade one entry for the maker order (accepted, level)
   and one for the taker order filling it (accepted, trade, level, done x2)),
   runs ``python -m workers.drain`` subprocesses and times the commits from the
   first to the last (read from the consumer group in Redis every 5 ms: an entry
   is acknowledged right after its COMMIT), then checks the trade count in
   PostgreSQL: trades/s (median over rounds), best configuration reported, with
   the CPU time per trade of the drain processes, PostgreSQL and Valkey (/proc);
2. lag: one drain process, entries fed at 5,000 trades/s; every 5 ms the bound
   below which the group has acknowledged everything is sampled; a trade's lag is
   the first sample at which it is below the bound minus the time it was XADDed
   (an upper bound, 5 ms grain; right with any number of concurrent writers).

``--baseline DIR`` also runs the drain of another checkout (``git worktree add
--detach DIR <commit>``), alternating old and new in every configuration and
round; the JSON then carries the baseline's figures and ``ratio_vs_old``.
``--writers`` runs this checkout's drain with each ``--writers`` value.

Prints a table; the last line is one JSON object with ``trades_per_s`` and
``lag_p99_ms``. Every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from engine import market as M
from engine import registry
from engine.types import EngineError, Market, OrderRequest
from ops.bench.markets import usd_market

LAG_BATCH = 1000  # XREADGROUP COUNT of the latency run
# durable (fsync, synchronous commit) with write-heavy production tuning: fewer
# checkpoints and full-page writes during the runs
PG_SETTINGS = {
    "shared_buffers": "512MB",
    "wal_buffers": "64MB",
    "max_wal_size": "8GB",
    "checkpoint_timeout": "30min",
}

LOAD_MARKET = usd_market("DRN")


# -- load through the real engine ----------------------------------------------------


class EngineLoad:
    """Random orders through the real matching engine (``engine.market``).

    Mostly resting limits near the mid, crossing IOC/limit orders, market orders,
    reduces and cancels, from a handful of users (self-trades included)."""

    def __init__(
        self,
        redis: Any,
        market: Market = LOAD_MARKET,
        seed: int = 1,
        prefix: str = "o",
        users: int = 6,
    ) -> None:
        self.redis = redis
        self.market = market
        self.rng = random.Random(seed)
        self.prefix = prefix
        self.users = [f"lu{i}" for i in range(users)]
        self.n = 0
        self.open: dict[str, tuple[str, int]] = {}  # order id -> (user, amount)
        self.calls = 0
        self.trades: list[tuple[str, int]] = []  # (market, trade id) emitted, in order
        self.final: dict[str, str] = {}  # order id -> final status emitted

    def _record(self, events: list[dict[str, Any]]) -> None:
        for ev in events:
            if ev["e"] == "trade":
                self.trades.append((self.market.id, ev["tid"]))
            elif ev["e"] == "done":
                self.final[ev["id"]] = ev["reason"]
                self.open.pop(ev["id"], None)

    async def setup(self) -> None:
        await registry.create_asset(self.redis, self.market.base, self.market.base_scale)
        await registry.create_asset(self.redis, self.market.quote, self.market.quote_scale)
        await registry.create_market(self.redis, self.market, int(time.time() * 1000))

    def _order(self) -> tuple[str, str, OrderRequest]:
        rng, m = self.rng, self.market
        self.n += 1
        oid = f"{self.prefix}{self.n}"
        user = rng.choice(self.users)
        side = rng.choice(("buy", "sell"))
        mid = 10_000 * m.tick
        r = rng.random()
        lots = rng.randint(1, 8) * m.lot
        if r < 0.6:  # resting limit near the mid
            off = rng.randint(1, 6) * m.tick
            price = mid - off if side == "buy" else mid + off
            req = OrderRequest(m.id, side, "limit", lots, price)  # type: ignore[arg-type]
        elif r < 0.92:  # crossing limit, sometimes IOC
            off = rng.randint(0, 8) * m.tick
            price = mid + off if side == "buy" else mid - off
            tif = "IOC" if rng.random() < 0.3 else "GTC"
            req = OrderRequest(m.id, side, "limit", lots, price, tif)  # type: ignore[arg-type]
        elif side == "sell":
            req = OrderRequest(m.id, "sell", "market", lots)
        else:
            budget = (mid // m.tick) * (lots // m.lot) * m.mult
            req = OrderRequest(m.id, "buy", "market", 0, quote_amount=budget)
        return oid, user, req

    async def step(self) -> None:
        """One engine call."""
        now = int(time.time() * 1000)
        self.calls += 1
        if self.open and self.rng.random() < 0.15:
            oid = self.rng.choice(list(self.open))
            user, amount = self.open.pop(oid)
            try:
                if self.rng.random() < 0.3 and amount > self.market.lot:
                    out = await M.reduce(
                        self.redis, self.market.id, oid, user, amount - self.market.lot, now
                    )
                    if out.status in ("NEW", "PARTIALLY_FILLED"):
                        self.open[oid] = (user, amount - self.market.lot)
                else:
                    out = await M.cancel(self.redis, self.market.id, oid, user, now)
                self._record(out.events)
            except EngineError:
                pass  # filled, or reduced below its fill meanwhile
            return
        oid, user, req = self._order()
        out = await M.place(self.redis, oid, user, req, now)
        if out.status in ("NEW", "PARTIALLY_FILLED"):
            self.open[oid] = (user, req.amount)
        self._record(out.events)

    async def run(self, calls: int, max_seconds: float = 60.0) -> int:
        """Up to ``calls`` engine calls within ``max_seconds``; calls made."""
        deadline = time.monotonic() + max_seconds
        done = 0
        while done < calls and time.monotonic() < deadline:
            await self.step()
            done += 1
        return done


class ExchangeLoad:
    """Random activity through the whole engine (``engine.exchange.Exchange``): deposits,
    orders with holds, cancels, transfers between users, withdrawals; the settler
    (``workers.settler``) runs every few steps so that fills reach the accounts."""

    def __init__(
        self, redis: Any, market: Market = LOAD_MARKET, seed: int = 1, users: int = 4
    ) -> None:
        self.redis = redis
        self.market = market
        self.rng = random.Random(seed)
        self.users = [f"x{seed}u{i}" for i in range(users)]
        self.n = 0
        self.open: list[tuple[str, str]] = []  # (user, order id)
        self.addr: dict[tuple[str, str], str] = {}

    async def setup(self) -> None:
        from engine.exchange import Exchange
        from workers.settler import Settler

        self.ex = await Exchange.connect(self.redis)
        self.settler = Settler(self.redis, publish=False)
        m = self.market
        await self.ex.create_asset(m.base, m.base_scale)
        await self.ex.create_asset(m.quote, m.quote_scale)
        await self.ex.create_market(m)
        for u in self.users:
            for asset, address in await self.ex.addresses(u):
                self.addr[(u, asset)] = address
            await self.deposit(u, m.base, 10**12)
            await self.deposit(u, m.quote, 10**15)

    async def deposit(self, user: str, asset: str, amount: int) -> None:
        self.n += 1
        await self.ex.deposit(f"dep{self.n}", self.addr[(user, asset)], asset, amount)

    async def step(self) -> None:
        rng, m = self.rng, self.market
        self.n += 1
        user = rng.choice(self.users)
        r = rng.random()
        try:
            if r < 0.6:
                side = rng.choice(("buy", "sell"))
                mid = 10_000 * m.tick
                off = rng.randint(-4, 6) * m.tick
                price = mid - off if side == "buy" else mid + off
                tif = "IOC" if rng.random() < 0.2 else "GTC"
                req = OrderRequest(m.id, side, "limit", rng.randint(1, 9) * m.lot, price, tif)  # type: ignore[arg-type]
                res = await self.ex.place_order(user, req)
                if res.order.status in ("NEW", "PARTIALLY_FILLED"):
                    self.open.append((user, res.order.id))
            elif r < 0.7:
                side = rng.choice(("buy", "sell"))
                if side == "sell":
                    req = OrderRequest(m.id, "sell", "market", rng.randint(1, 5) * m.lot)
                else:
                    req = OrderRequest(m.id, "buy", "market", 0, quote_amount=10**9)
                await self.ex.place_order(user, req)
            elif r < 0.85 and self.open:
                owner, oid = self.open.pop(rng.randrange(len(self.open)))
                await self.ex.cancel_order(owner, order_id=oid)
            elif r < 0.92:
                to = rng.choice([u for u in self.users if u != user])
                asset = rng.choice((m.base, m.quote))
                await self.ex.transfer(user, f"tr{self.n}", asset, 10**6, self.addr[(to, asset)])
            elif r < 0.97:
                wid = f"wd{self.n}"
                await self.ex.request_withdrawal(user, wid, m.quote, 10**7, "ext0address")
                if rng.random() < 0.5:
                    await self.ex.complete_withdrawal(wid)
                else:
                    await self.ex.reject_withdrawal(wid)
            else:
                await self.deposit(user, rng.choice((m.base, m.quote)), 10**8)
        except EngineError:
            pass  # insufficient funds, already filled: part of the mix
        if self.n % 7 == 0:
            await self.settler.settle_once()

    async def run(self, steps: int, max_seconds: float = 60.0) -> int:
        deadline = time.monotonic() + max_seconds
        done = 0
        while done < steps and time.monotonic() < deadline:
            await self.step()
            done += 1
        return done

    async def settle(self) -> None:
        """Let the settler apply everything emitted so far."""
        await self.settler.drain()


async def emitted_trades(redis: Any, market_id: str) -> list[tuple[str, int]]:
    """(market, trade id) of every trade in the market stream, in order."""
    out: list[tuple[str, int]] = []
    last = "-"
    while True:
        batch = await redis.xrange(f"{{m:{market_id}}}:ev", min=last, count=1000)
        if last != "-":
            batch = batch[1:]
        if not batch:
            return out
        for entry_id, fields in batch:
            for ev in orjson.loads(fields[b"e"] if b"e" in fields else fields["e"]):
                if ev["e"] == "trade":
                    out.append((market_id, ev["tid"]))
            last = entry_id.decode() if isinstance(entry_id, bytes) else entry_id


# -- synthetic entries in the engine's exact format ----------------------------------------


class Synthetic:
    """Market stream entries as the engine writes them, without running the engine:
    per trade one maker entry (accepted + level) and one taker entry (accepted,
    trade, level, done maker, done taker)."""

    def __init__(self, market_id: str = "SYN-USD", seed: int = 1) -> None:
        self.market = market_id
        self.rng = random.Random(seed)
        self.seq = 0
        self.tid = 0
        self.oid = 0

    def _events(self, bodies: list[str], ts: int) -> dict[str, Any]:
        first = self.seq + 1
        items = []
        for b in bodies:
            self.seq += 1
            items.append(f'{{"seq":{self.seq},"ts":{ts},{b}}}')
        return {"f": first, "l": self.seq, "e": "[" + ",".join(items) + "]"}

    def pair(self, ts: int) -> list[dict[str, Any]]:
        """Two entries making one trade."""
        rng = self.rng
        price = 10_000_000_000 + rng.randint(-50, 50) * 1_000_000
        size = rng.randint(1, 20) * 1_000
        quote = price * size // 10**8
        maker_side = rng.choice(("buy", "sell"))
        taker_side = "sell" if maker_side == "buy" else "buy"
        self.oid += 1
        mk = f"{1_000_000_000 + self.oid}"
        self.oid += 1
        tk = f"{1_000_000_000 + self.oid}"
        mu, tu = f"u{rng.randint(1, 500)}", f"u{rng.randint(1, 500)}"
        maker = self._events(
            [
                f'"e":"accepted","id":"{mk}","u":"{mu}","cid":"","side":"{maker_side}",'
                f'"type":"limit","tif":"GTC","po":0,"stp":"cancel_newest","price":{price},'
                f'"amount":{size},"qb":0',
                f'"e":"level","side":"{maker_side}","price":{price},"size":{size}',
            ],
            ts,
        )
        self.tid += 1
        taker = self._events(
            [
                f'"e":"accepted","id":"{tk}","u":"{tu}","cid":"","side":"{taker_side}",'
                f'"type":"limit","tif":"IOC","po":0,"stp":"cancel_newest","price":{price},'
                f'"amount":{size},"qb":0',
                f'"e":"trade","tid":{self.tid},"price":{price},"size":{size},"quote":{quote},'
                f'"side":"{taker_side}","maker":"{mk}","taker":"{tk}","mu":"{mu}","tu":"{tu}",'
                f'"mfee":{size // 1000},"tfee":{quote // 500}',
                f'"e":"level","side":"{maker_side}","price":{price},"size":0',
                f'"e":"done","id":"{mk}","u":"{mu}","side":"{maker_side}","reason":"FILLED",'
                f'"msg":"","amount":{size},"filled":{size},"cost":{quote}',
                f'"e":"done","id":"{tk}","u":"{tu}","side":"{taker_side}","reason":"FILLED",'
                f'"msg":"","amount":{size},"filled":{size},"cost":{quote}',
            ],
            ts,
        )
        return [maker, taker]

    @property
    def stream(self) -> str:
        return f"{{m:{self.market}}}:ev"


async def preload(redis: Any, syn: Synthetic, trades: int, chunk: int = 2000) -> None:
    """XADD entries for ``trades`` trades, pipelined."""
    left = trades
    while left > 0:
        n = min(chunk, left)
        pipe = redis.pipeline(transaction=False)
        ts = int(time.time() * 1000)
        for _ in range(n):
            for fields in syn.pair(ts):
                pipe.xadd(syn.stream, fields)
        await pipe.execute()
        left -= n


# -- the benchmark -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Servers:
    redis_url: str
    pg_url: str
    pids: dict[str, int]  # "valkey", "postgres" (the postmaster; backends are its children)


@dataclass(frozen=True, slots=True)
class Code:
    """A drain to run: this checkout, or another one (``--baseline``, e.g. a git worktree
    of an older commit), with ``--writers`` if given (this checkout only)."""

    label: str
    tree: Path | None = None
    writers: int | None = None


@contextlib.contextmanager
def _servers() -> Iterator[Servers]:
    from ops.postgres import start_postgres
    from ops.valkey import start_valkey

    with tempfile.TemporaryDirectory(prefix="hftx-bench-drain-") as tmp:
        vk = start_valkey(Path(tmp) / "valkey")
        try:
            pg = start_postgres(Path(tmp) / "pg", durable=True, settings=PG_SETTINGS)
            try:
                yield Servers(
                    vk.url, pg.url, {"valkey": vk.process.pid, "postgres": pg.process.pid}
                )
            finally:
                pg.stop()
        finally:
            vk.stop()


def _drain_procs(
    redis_url: str, db_url: str, batch: int, procs: int = 1, code: Code = Code("new")
) -> list[subprocess.Popen[bytes]]:
    env = dict(os.environ, REDIS_URL=redis_url, DATABASE_URL=db_url, HFTX_LOG_LEVEL="WARNING")
    env.pop("HFTX_DRAIN_FAULT", None)
    cmd = [sys.executable, "-m", "workers.drain", "--batch", str(batch)]
    if code.writers is not None:
        cmd += ["--writers", str(code.writers)]
    if code.tree is not None:  # that checkout's packages first
        env["PYTHONPATH"] = str(code.tree)
    return [
        subprocess.Popen(cmd, env=env, cwd=code.tree, stdout=subprocess.DEVNULL)
        for _ in range(procs)
    ]


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        p.terminate()
    for p in procs:
        p.wait(30)


_TICK = os.sysconf("SC_CLK_TCK")


def _proc_cpu(pids: list[int], children: bool = False) -> float:
    """CPU seconds (user + system) of ``pids`` and, with ``children``, of all their
    descendants alive now plus the ones they reaped (Linux /proc; 0 elsewhere)."""
    kids: dict[int, list[int]] = {}
    if children:
        for d in Path("/proc").iterdir():
            if d.name.isdigit():
                with contextlib.suppress(OSError):
                    st = (d / "stat").read_text()
                    kids.setdefault(int(st[st.rindex(")") + 2 :].split()[1]), []).append(
                        int(d.name)
                    )
    total = 0.0
    todo = list(pids)
    while todo:
        pid = todo.pop()
        with contextlib.suppress(OSError):
            st = Path(f"/proc/{pid}/stat").read_text()
            fields = st[st.rindex(")") + 2 :].split()
            total += sum(int(x) for x in fields[11 : 15 if children else 13]) / _TICK
        todo += kids.get(pid, [])
    return total


def _cpu_sample(servers: Servers, drains: list[subprocess.Popen[bytes]]) -> dict[str, float]:
    return {
        "drain": _proc_cpu([p.pid for p in drains]),
        "postgres": _proc_cpu([servers.pids["postgres"]], children=True),
        "valkey": _proc_cpu([servers.pids["valkey"]]),
    }


async def _fresh_db(server_url: str, name: str) -> str:
    from ops.migrate import create_database, migrate

    url = create_database(server_url, name)
    migrate(url)
    return url


async def _cleanup(redis: Any, pg_url: str, db_name: str) -> None:
    """Drop a run's database and streams so that runs do not weigh on each other."""
    from ops.migrate import drop_database

    for m in await redis.smembers("{g}:markets"):
        name = m.decode() if isinstance(m, bytes) else str(m)
        await redis.delete(f"{{m:{name}}}:ev")
    await redis.delete("{g}:markets")
    drop_database(pg_url, db_name)


async def _unacked(redis: Any, stream: str, group: str = "drain") -> int | None:
    """Entries of ``stream`` the drain group has not acknowledged (= not committed);
    None before the group exists."""
    from workers import streams

    for g in await streams.groups(redis, stream):
        if g.name == group:
            if g.lag is None:  # unknown: count what was never delivered
                after = await redis.xrange(stream, min="(" + g.last_delivered)
                return g.pending + len(after)
            return g.pending + g.lag
    return None


async def _committed_bound(redis: Any, stream: str, group: str = "drain") -> tuple[int, int]:
    """An id such that every entry below it is acknowledged by ``group`` (acks follow
    commits): its oldest pending entry, else just after its last delivered one."""
    from workers import streams

    for g in await streams.groups(redis, stream):
        if g.name == group:
            if g.pending:
                oldest = await streams.oldest_pending(redis, stream, group)
                if oldest is not None:
                    return streams.parse_id(oldest)
            ms, seq = streams.parse_id(g.last_delivered)
            return ms, seq + 1
    return 0, 0


@dataclass(slots=True)
class Run:
    trades_per_s: float
    cpu_us_per_trade: dict[str, float]


async def throughput(
    redis: Any,
    servers: Servers,
    db_url: str,
    batch: int,
    procs: int,
    trades: int,
    timeout: float,
    code: Code = Code("new"),
) -> Run:
    """Trades/s ``procs`` drain processes commit from a preloaded backlog of ``trades``
    trades, from the first acknowledged batch to the last (an ack follows its COMMIT;
    Redis is polled every 5 ms, which costs PostgreSQL nothing), and the CPU time each
    process spent per trade in that window. The trades are counted in PostgreSQL."""
    import psycopg

    syn = Synthetic(f"T{batch}X{procs}{code.label.upper()}-USD", seed=batch)
    await redis.sadd("{g}:markets", syn.market)
    await preload(redis, syn, trades)
    entries = 2 * trades
    running = _drain_procs(servers.redis_url, db_url, batch, procs, code)
    try:
        start: tuple[float, int, dict[str, float]] | None = None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            left = await _unacked(redis, syn.stream)
            now = time.perf_counter()
            if left is not None and left < entries and start is None:
                start = (now, left, _cpu_sample(servers, running))
            if left == 0:
                break
            await asyncio.sleep(0.005)
        else:
            raise TimeoutError(f"batch {batch}: drain did not finish in {timeout}s")
        cpu = _cpu_sample(servers, running)
    finally:
        _stop(running)
    assert start is not None
    t0, left0, cpu0 = start
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
        row = await (await conn.execute("SELECT count(*) FROM trades")).fetchone()
    if not row or int(row[0]) != trades:
        raise AssertionError(f"{row} trades in PostgreSQL, {trades} emitted")
    done = left0 / 2
    elapsed = now - t0
    return Run(
        done / elapsed if elapsed > 0 else float("inf"),
        {k: round((cpu[k] - cpu0[k]) / done * 1e6, 1) for k in cpu},
    )


async def lag_run(
    redis: Any,
    redis_url: str,
    db_url: str,
    batch: int,
    rate: int,
    seconds: float,
    code: Code = Code("new"),
) -> list[float]:
    """Per-trade commit lag (ms) while feeding ``rate`` trades/s for ``seconds``: from
    XADD to the first 5 ms sample at which every entry up to the trade's is
    acknowledged (an ack follows its COMMIT; holds with any number of writers)."""
    syn = Synthetic(f"LAG{code.label.upper()}-USD", seed=99)
    await redis.sadd("{g}:markets", syn.market)
    added: list[tuple[tuple[int, int], float]] = []  # (taker entry id, XADD time) per trade
    committed_at: list[float] = []
    running = _drain_procs(redis_url, db_url, batch, 1, code)
    stop = asyncio.Event()

    async def sampler() -> None:
        while not stop.is_set() or len(committed_at) < len(added):
            bound = await _committed_bound(redis, syn.stream)
            now = time.perf_counter()
            while len(committed_at) < len(added) and added[len(committed_at)][0] < bound:
                committed_at.append(now)
            if stop.is_set() and time.perf_counter() > stop_deadline:
                break
            await asyncio.sleep(0.005)

    try:
        await _reading(redis, syn.stream, 30.0)
        stop_deadline = float("inf")
        task = asyncio.create_task(sampler())
        tick = 0.01
        per_tick = rate * tick
        start = time.perf_counter()
        owed = 0.0
        end = start + seconds
        while time.perf_counter() < end:
            owed += per_tick
            n = int(owed)
            owed -= n
            if n:
                pipe = redis.pipeline(transaction=False)
                ts = int(time.time() * 1000)
                for _ in range(n):
                    for fields in syn.pair(ts):
                        pipe.xadd(syn.stream, fields)
                ids = await pipe.execute()
                now = time.perf_counter()
                added.extend((_parse_id(i), now) for i in ids[1::2])
            next_tick = start + (len(added) / rate) if rate else end
            await asyncio.sleep(max(0.0, min(tick, next_tick - time.perf_counter())))
        stop_deadline = time.perf_counter() + 30
        stop.set()
        await task
    finally:
        _stop(running)
    return [(c - a[1]) * 1000 for a, c in zip(added, committed_at, strict=False)]


def _parse_id(entry_id: Any) -> tuple[int, int]:
    text = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


async def _reading(redis: Any, stream: str, timeout: float) -> None:
    """Wait until a drain has joined the stream's consumer group."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if await redis.xinfo_consumers(stream, "drain"):
                return
        except Exception:  # no stream or group yet
            pass
        await asyncio.sleep(0.05)
    raise TimeoutError("no drain is reading")


def _pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(p / 100 * len(s)))]


def _median(values: list[float]) -> float:
    s = sorted(values)
    return (s[(len(s) - 1) // 2] + s[len(s) // 2]) / 2


async def main_async(
    quick: bool,
    baseline: Path | None = None,
    rounds: int = 1,
    batches: list[int] | None = None,
    drains: list[int] | None = None,
    writers: list[int] | None = None,
) -> dict[str, Any]:
    """Every configuration for every code variant, variants alternating (old, new;
    then new, old; ...) in each of ``rounds``; medians over rounds."""
    import redis.asyncio as aredis

    batches = batches or ([1000, 4000] if quick else [250, 1000, 2000, 4000, 8000])
    drains = drains or ([1, 2] if quick else [1, 2, 3])
    trades = 50_000 if quick else 100_000
    lag_seconds = 15.0 if quick else 60.0
    if writers and len(writers) > 1:
        codes = [Code(f"new-w{w}", None, w) for w in writers]
    else:
        codes = [Code("new", None, writers[0] if writers else None)]
    if baseline is not None:
        codes.append(Code("old", baseline))
    rates: dict[tuple[str, int, int], list[Run]] = {}
    lags: dict[str, list[float]] = {}
    n = 0
    with _servers() as servers:
        redis = aredis.Redis.from_url(servers.redis_url)
        try:
            for b in batches:
                for d in drains:
                    for r in range(rounds):
                        for code in codes if r % 2 == 0 else codes[::-1]:
                            n += 1
                            db = await _fresh_db(servers.pg_url, f"bench_{n}")
                            try:
                                run = await throughput(
                                    redis, servers, db, b, d, trades, timeout=180, code=code
                                )
                            finally:
                                await _cleanup(redis, servers.pg_url, f"bench_{n}")
                            rates.setdefault((code.label, b, d), []).append(run)
                            print(
                                f"batch {b:>6}  drains {d}  {code.label:>7}  "
                                f"{run.trades_per_s:>10,.0f} trades/s  cpu us/trade "
                                f"{run.cpu_us_per_trade}",
                                flush=True,
                            )
            # latency: one drain process, a latency-minded batch size
            for code in codes:
                n += 1
                db = await _fresh_db(servers.pg_url, f"bench_{n}")
                try:
                    lags[code.label] = await lag_run(
                        redis, servers.redis_url, db, LAG_BATCH, 5_000, lag_seconds, code
                    )
                finally:
                    await _cleanup(redis, servers.pg_url, f"bench_{n}")
                ls = lags[code.label]
                print(
                    f"{code.label:>7}: lag at 5,000 trades/s over {lag_seconds:.0f}s (one drain, "
                    f"batch {LAG_BATCH}): p50 {_pct(ls, 50):.1f} ms, p99 {_pct(ls, 99):.1f} ms, "
                    f"max {max(ls) if ls else float('nan'):.1f} ms",
                    flush=True,
                )
        finally:
            await redis.aclose()

    def summary(label: str) -> dict[str, Any]:
        mine = {(b, d): runs for (lb, b, d), runs in rates.items() if lb == label}
        med = {k: _median([r.trades_per_s for r in v]) for k, v in mine.items()}
        (bb, bd), best = max(med.items(), key=lambda kv: kv[1])
        single = max(v for (b, d), v in med.items() if d == 1) if 1 in drains else None
        ls = lags[label]
        return {
            "trades_per_s": round(best),
            "best_batch": bb,
            "best_drains": bd,
            "single_drain_trades_per_s": round(single) if single is not None else None,
            "cpu_us_per_trade_at_best": mine[(bb, bd)][0].cpu_us_per_trade,
            "lag_p50_ms": round(_pct(ls, 50), 1),
            "lag_p99_ms": round(_pct(ls, 99), 1),
            "lag_max_ms": round(max(ls), 1) if ls else None,
            "lag_samples": len(ls),
        }

    result: dict[str, Any] = summary(codes[0].label)
    result.update(
        {
            "code": codes[0].label,
            "cpus": os.cpu_count(),
            "backlog_trades": trades,
            "entries_per_trade": 2,
            "rounds": rounds,
            "lag_rate_trades_per_s": 5_000,
            "lag_batch": LAG_BATCH,
            "lag_seconds": lag_seconds,
        }
    )
    for code in codes[1:]:
        other = summary(code.label)
        result[code.label] = other
        result[f"ratio_vs_{code.label}"] = round(result["trades_per_s"] / other["trades_per_s"], 2)
    return result


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m ops.bench.drain")
    p.add_argument(
        "--quick", action="store_true", help="fewer batch sizes, smaller backlog (< 90 s)"
    )
    p.add_argument(
        "--baseline",
        type=Path,
        help="also run the drain of this checkout (e.g. `git worktree add /tmp/old <commit>`), "
        "alternating with this one",
    )
    p.add_argument("--rounds", type=int, default=1, help="runs of each configuration")
    p.add_argument("--batches", type=_ints, help="XREADGROUP COUNTs, e.g. 1000,4000")
    p.add_argument("--drains", type=_ints, help="drain processes, e.g. 1,2")
    p.add_argument("--writers", type=_ints, help="--writers of this checkout's drain, e.g. 1,2")
    args = p.parse_args()
    result = asyncio.run(
        main_async(args.quick, args.baseline, args.rounds, args.batches, args.drains, args.writers)
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
