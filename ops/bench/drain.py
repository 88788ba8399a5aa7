"""Drain benchmark, and the load generators the drain tests share.

    python -m ops.bench.drain [--quick]

Starts its own Valkey and PostgreSQL (loopback, temp dirs, PostgreSQL durable:
fsync on), then

1. throughput: for each batch size (XREADGROUP COUNT) and number of drain
   processes (1..3: several instances share the consumer group), preloads a
   backlog of synthetic market stream entries (exactly the engine's format,
   docs/internals.md: per trade one entry for the maker order (accepted, level)
   and one for the taker order filling it (accepted, trade, level, done x2)),
   runs ``python -m workers.drain`` subprocesses and times the commits from the
   first to the last: trades/s, best configuration reported;
2. lag: one drain process, entries fed at 5,000 trades/s; every 10 ms the newest
   committed trade id is sampled; a trade's lag is the first sample at which it
   is committed minus the time it was XADDed (an upper bound, 10 ms grain).

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
from pathlib import Path
from typing import Any

import orjson

from engine import market as M
from engine import registry
from engine.types import EngineError, Market, OrderRequest

LAG_BATCH = 1000  # XREADGROUP COUNT of the latency run
# durable (fsync, synchronous commit) with write-heavy production tuning: fewer
# checkpoints and full-page writes during the runs
PG_SETTINGS = {
    "shared_buffers": "512MB",
    "wal_buffers": "64MB",
    "max_wal_size": "8GB",
    "checkpoint_timeout": "30min",
}

LOAD_MARKET = Market(
    id="DRN-USD",
    base="DRN",
    quote="USD",
    base_scale=8,
    quote_scale=8,
    tick=1_000_000,
    lot=1_000,
    min_size=1_000,
    max_notional=10**15,
    maker_fee_bps=10,
    taker_fee_bps=20,
)


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


@contextlib.contextmanager
def _servers() -> Iterator[tuple[str, str]]:
    from ops import embedded

    with tempfile.TemporaryDirectory(prefix="hftx-bench-drain-") as tmp:
        vk = embedded.start_valkey(Path(tmp) / "valkey")
        try:
            pg = embedded.start_postgres(Path(tmp) / "pg", durable=True, settings=PG_SETTINGS)
            try:
                yield vk.url, pg.url
            finally:
                pg.stop()
        finally:
            vk.stop()


def _drain_procs(
    redis_url: str, db_url: str, batch: int, procs: int = 1
) -> list[subprocess.Popen[bytes]]:
    env = dict(os.environ, REDIS_URL=redis_url, DATABASE_URL=db_url, HFTX_LOG_LEVEL="WARNING")
    env.pop("HFTX_DRAIN_FAULT", None)
    return [
        subprocess.Popen(
            [sys.executable, "-m", "workers.drain", "--batch", str(batch)],
            env=env,
            stdout=subprocess.DEVNULL,
        )
        for _ in range(procs)
    ]


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        p.terminate()
    for p in procs:
        p.wait(30)


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


async def _count_trades(conn: Any, market: str) -> int:
    cur = await conn.execute(
        "SELECT coalesce(max(trade_id), 0) FROM trades WHERE market = %s", (market,)
    )
    row = await cur.fetchone()
    return int(row[0])


async def throughput(
    redis: Any, redis_url: str, db_url: str, batch: int, procs: int, trades: int, timeout: float
) -> float:
    """Trades/s ``procs`` drain processes commit from a preloaded backlog of ``trades``
    trades (from the first commit to the last)."""
    import psycopg

    syn = Synthetic(f"T{batch}X{procs}-USD", seed=batch)
    await redis.sadd("{g}:markets", syn.market)
    await preload(redis, syn, trades)
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
        running = _drain_procs(redis_url, db_url, batch, procs)
        try:
            start = None
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                row = await (await conn.execute("SELECT count(*) FROM trades")).fetchone()
                n = int(row[0]) if row else 0
                if start is None and n > 0:
                    start = (time.perf_counter(), n)
                if n >= trades:
                    break
                await asyncio.sleep(0.02)
            else:
                raise TimeoutError(f"batch {batch}: drain did not finish in {timeout}s")
            assert start is not None
            t0, n0 = start
            elapsed = time.perf_counter() - t0
            return (trades - n0) / elapsed if elapsed > 0 else float("inf")
        finally:
            _stop(running)


async def lag_run(
    redis: Any, redis_url: str, db_url: str, batch: int, rate: int, seconds: float
) -> list[float]:
    """Per-trade commit lag (ms) while feeding ``rate`` trades/s for ``seconds``."""
    import psycopg

    syn = Synthetic("LAG-USD", seed=99)
    await redis.sadd("{g}:markets", syn.market)
    added: list[float] = []  # time each trade id (index + 1) was XADDed
    committed_at: list[float] = []
    running = _drain_procs(redis_url, db_url, batch)
    stop = asyncio.Event()

    async def sampler() -> None:
        async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
            while not stop.is_set() or len(committed_at) < len(added):
                n = await _count_trades(conn, syn.market)
                now = time.perf_counter()
                while len(committed_at) < min(n, len(added)):
                    committed_at.append(now)
                if stop.is_set() and time.perf_counter() > stop_deadline:
                    break
                await asyncio.sleep(0.01)

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
                await pipe.execute()
                now = time.perf_counter()
                added.extend([now] * n)
            next_tick = start + (len(added) / rate) if rate else end
            await asyncio.sleep(max(0.0, min(tick, next_tick - time.perf_counter())))
        stop_deadline = time.perf_counter() + 30
        stop.set()
        await task
    finally:
        _stop(running)
    return [(c - a) * 1000 for a, c in zip(added, committed_at, strict=False)]


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


async def main_async(quick: bool) -> dict[str, Any]:
    import redis.asyncio as aredis

    batches = [1000, 4000] if quick else [250, 1000, 2000, 4000, 8000]
    procs = [1, 2] if quick else [1, 2, 3]
    trades = 50_000 if quick else 100_000
    lag_seconds = 15.0 if quick else 60.0
    rows = []
    with _servers() as (redis_url, pg_url):
        redis = aredis.Redis.from_url(redis_url)
        try:
            for b in batches:
                for n in procs:
                    db = await _fresh_db(pg_url, f"bench_{b}_{n}")
                    tps = await throughput(redis, redis_url, db, b, n, trades, timeout=120)
                    await _cleanup(redis, pg_url, f"bench_{b}_{n}")
                    rows.append((b, n, tps))
                    print(f"batch {b:>6}  drains {n}  {tps:>10,.0f} trades/s", flush=True)
            best_batch, best_procs, best = max(rows, key=lambda r: r[2])
            single = max((r for r in rows if r[1] == 1), key=lambda r: r[2])
            # latency: one drain process (max committed trade id = all before it is in),
            # a latency-minded batch size
            db = await _fresh_db(pg_url, "bench_lag")
            lags = await lag_run(redis, redis_url, db, LAG_BATCH, 5_000, lag_seconds)
        finally:
            await redis.aclose()
    result = {
        "trades_per_s": round(best),
        "best_batch": best_batch,
        "best_drains": best_procs,
        "single_drain_trades_per_s": round(single[2]),
        "cpus": os.cpu_count(),
        "backlog_trades": trades,
        "entries_per_trade": 2,
        "lag_rate_trades_per_s": 5_000,
        "lag_batch": LAG_BATCH,
        "lag_seconds": lag_seconds,
        "lag_samples": len(lags),
        "lag_p50_ms": round(_pct(lags, 50), 1),
        "lag_p99_ms": round(_pct(lags, 99), 1),
        "lag_max_ms": round(max(lags), 1) if lags else None,
    }
    print(
        f"lag at 5,000 trades/s over {lag_seconds:.0f}s (one drain, batch {LAG_BATCH}): "
        f"p50 {result['lag_p50_ms']} ms, p99 {result['lag_p99_ms']} ms, "
        f"max {result['lag_max_ms']} ms"
    )
    return result


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m ops.bench.drain")
    p.add_argument(
        "--quick", action="store_true", help="fewer batch sizes, smaller backlog (< 90 s)"
    )
    args = p.parse_args()
    result = asyncio.run(main_async(args.quick))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
