"""Full order path benchmark: hold + place through ``Exchange.place_order`` with the
settler applying the resulting events to the accounts at the same time.

Used by ``python -m ops.bench.engine --full-path`` (after the engine benchmark, on
the same throwaway Valkey, which it flushes), or alone:

    python -m ops.bench.full_path [--quick] [--url redis://127.0.0.1:PORT/0] [--rate N]
        [--profile F] [--profile-settler F]

Setup: a market FP-USD, 250 users with deposits of both assets (``Exchange.deposit``
to addresses from ``engine.addresses.deposit_address``), 2,000 resting orders. The
settler (``workers.settler.Settler.run``, as ``python -m workers.settler`` runs it)
works in its own process, like in production. Then two phases, each bounded in
count and time, with the same mix (60% resting limits, 30% crossing IOC of 1-3
lots from other users, 10% cancels of live resting orders):

The facade's Redis client is the web node's (``api.node``): commands of one event-loop
iteration coalesced into one pipeline (``api.redisbatch``), unless ``HFTX_REDIS_BATCH=0``
(the same switch as the web node) asks for plain redis-py.

1. throughput: 64 concurrent callers place as fast as they can ->
   ``full_path_orders_per_s`` (orders placed, and their private pushes published,
   per second; settlement runs alongside and its backlog is drained before phase 2);
2. latency at a fixed offered rate of 2,000 orders/s (``--rate``; open loop: order i is sent
   at t0 + i/2000 whatever happened before) -> ``settle_lag_p50_ms`` /
   ``settle_lag_p99_ms``: from a stream entry's id (the server's clock at XADD)
   to the settler having applied it to every account concerned (the settler's own
   measure), plus the place latency seen by the callers and the settler's CPU per
   order at that rate (``cpu_us_per_order_settler_offered``: small batches, so what
   the settler pays per wake-up shows, as behind a web node).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import json
import multiprocessing
import os
import random
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing.connection import Connection
from typing import Any

import redis.asyncio as aredis

from api.redisbatch import batching
from engine import addresses
from engine.exchange import Exchange
from engine.types import EngineError, OrderRequest
from ops.bench.markets import usd_market

MARKET = usd_market("FP")
MID = 10_000 * MARKET.tick
MAKERS = [f"fm{i}" for i in range(200)]
TAKERS = [f"ft{i}" for i in range(50)]
OFFERED_PER_S = 2_000
CONCURRENCY = 64


def batched() -> bool:
    return os.environ.get("HFTX_REDIS_BATCH", "1") != "0"


def facade_client(url: str) -> Any:
    """The client ``Exchange`` gets, as the web node builds it (``api.node``)."""
    pool = aredis.BlockingConnectionPool.from_url(url, max_connections=128, timeout=30)
    r = aredis.Redis(connection_pool=pool)
    return batching(r) if batched() else r


def pct(values: list[float], q: float) -> float:
    if len(values) < 2:
        return values[0] if values else float("nan")
    return statistics.quantiles(values, n=1000)[int(q * 1000) - 1]


class Flow:
    """The order mix, tracking live resting orders (user, order id)."""

    def __init__(self, ex: Exchange, seed: int) -> None:
        self.ex = ex
        self.rng = random.Random(seed)
        self.live: list[tuple[str, str]] = []  # (user, order id)
        self.index: dict[str, int] = {}
        self.errors: dict[str, int] = {}

    def _add(self, user: str, oid: str) -> None:
        self.index[oid] = len(self.live)
        self.live.append((user, oid))

    def _forget(self, oid: str) -> tuple[str, str] | None:
        i = self.index.pop(oid, None)
        if i is None:
            return None
        entry = self.live[i]
        last = self.live.pop()
        if last[1] != oid:
            self.live[i] = last
            self.index[last[1]] = i
        return entry

    def _rest_req(self) -> tuple[str, OrderRequest]:
        side = self.rng.choice(["buy", "sell"])
        off = self.rng.randint(1, 50) * MARKET.tick
        price = MID - off if side == "buy" else MID + off
        return self.rng.choice(MAKERS), OrderRequest(MARKET.id, side, "limit", MARKET.lot, price)  # type: ignore[arg-type]

    async def rest(self) -> None:
        user, req = self._rest_req()
        res = await self.ex.place_order(user, req)
        if res.order.status in ("NEW", "PARTIALLY_FILLED"):
            self._add(user, res.order.id)

    async def step(self) -> None:
        r = self.rng.random()
        try:
            if r < 0.6 or not self.live:
                await self.rest()
            elif r < 0.9:
                side = self.rng.choice(["buy", "sell"])
                price = MID + 60 * MARKET.tick if side == "buy" else MID - 60 * MARKET.tick
                lots = self.rng.choices((1, 2, 3), weights=(3, 2, 1))[0]
                req = OrderRequest(MARKET.id, side, "limit", lots * MARKET.lot, price, "IOC")  # type: ignore[arg-type]
                res = await self.ex.place_order(self.rng.choice(TAKERS), req)
                for fill in res.fills:  # makers are one lot: taken in full
                    self._forget(fill.maker_order_id)
            else:
                user, oid = self.live[self.rng.randrange(len(self.live))]
                self._forget(oid)
                await self.ex.cancel_order(user, order_id=oid)
        except EngineError as exc:
            # a cancel racing a fill of the same order: part of the mix
            self.errors[exc.code] = self.errors.get(exc.code, 0) + 1


# -- the settler, in its own process ---------------------------------------------------


def _settler_process(url: str, conn: Connection, profile: str | None = None) -> None:
    with contextlib.suppress(ImportError):  # as ``python -m workers.settler`` runs it
        import uvloop

        uvloop.install()
    asyncio.run(_settler_main(url, conn, profile))


async def _settler_main(url: str, conn: Connection, profile: str | None) -> None:
    """The settler, answering the parent's commands; ``profile``: a CPU-time cProfile
    from the last ``reset`` (the offered-rate phase) to ``stop``, written there."""
    from workers.settler import Settler

    r = aredis.Redis.from_url(url)
    settler = Settler(r, instance="bench-settler", refresh_s=0.2)
    stop = asyncio.Event()
    task = asyncio.create_task(settler.run(stop))
    loop = asyncio.get_running_loop()
    profiler = cProfile.Profile(time.process_time) if profile else None
    try:
        while True:
            cmd = await loop.run_in_executor(None, conn.recv)
            if cmd == "reset":
                settler.recent_lags_ms.clear()
                if profiler is not None:
                    profiler.enable()
                conn.send("ok")
            elif cmd == "lags":
                conn.send(list(settler.recent_lags_ms))
            elif cmd == "cpu":
                conn.send(time.process_time())
            else:
                break
    finally:
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(str(profile))
        stop.set()
        await asyncio.gather(task, return_exceptions=True)
        await r.aclose()
        conn.send("stopped")


class SettlerProcess:
    def __init__(self, url: str, profile: str | None = None) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_settler_process, args=(url, child, profile), daemon=True)
        self.proc.start()

    def ask(self, cmd: str, timeout: float = 30.0) -> Any:
        self.conn.send(cmd)
        if not self.conn.poll(timeout):
            raise TimeoutError(f"settler did not answer {cmd!r}")
        return self.conn.recv()

    def stop(self) -> None:
        with contextlib.suppress(TimeoutError, OSError, EOFError):
            self.ask("stop", timeout=15.0)
        self.proc.join(10)
        if self.proc.is_alive():
            self.proc.terminate()
            self.proc.join(5)


async def valkey_cpu_s(r: Any) -> float:
    info = await r.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


async def settled(r: Any, timeout_s: float) -> float:
    """Wait (bounded) until the settler has applied the whole market stream; seconds."""
    t0 = time.monotonic()
    tag = "{m:" + MARKET.id + "}"
    while time.monotonic() - t0 < timeout_s:
        last = await r.xrevrange(tag + ":ev", count=1)
        pos = await r.get(tag + ":stl")
        if last and pos is not None and pos == last[0][0]:
            return time.monotonic() - t0
        await asyncio.sleep(0.02)
    raise TimeoutError(f"settlement still behind after {timeout_s} s")


# -- phases ----------------------------------------------------------------------------


async def setup(r: Any) -> Exchange:
    await r.flushall()
    ex = await Exchange.connect(r)
    await ex.create_asset(MARKET.base, MARKET.base_scale)
    await ex.create_asset(MARKET.quote, MARKET.quote_scale)
    await ex.create_market(MARKET)
    n = 0
    for chunk in range(0, len(MAKERS + TAKERS), 50):
        jobs = []
        for user in (MAKERS + TAKERS)[chunk : chunk + 50]:
            for asset, amount in ((MARKET.base, 10**13), (MARKET.quote, 10**15)):
                n += 1
                address = await addresses.deposit_address(r, user, asset)
                jobs.append(ex.deposit(f"fpdep{n}", address, asset, amount))
        await asyncio.gather(*jobs)
    return ex


async def throughput(flow: Flow, orders: int, max_s: float) -> tuple[int, float]:
    """Closed loop: CONCURRENCY callers until ``orders`` are placed or ``max_s`` passed."""
    left = orders
    deadline = time.monotonic() + max_s

    async def caller() -> int:
        nonlocal left
        done = 0
        while left > 0 and time.monotonic() < deadline:
            left -= 1
            await flow.step()
            done += 1
        return done

    t0 = time.perf_counter()
    done = sum(await asyncio.gather(*(caller() for _ in range(CONCURRENCY))))
    await flow.ex.flush()  # the private pushes of these orders are part of the work
    return done, time.perf_counter() - t0


def _throughput_process(url: str, seed: int, orders: int, max_s: float, start_at: float) -> Any:
    return asyncio.run(_throughput_main(url, seed, orders, max_s, start_at))


async def _throughput_main(
    url: str, seed: int, orders: int, max_s: float, start_at: float
) -> tuple[int, float, float, dict[str, int]]:
    r = facade_client(url)
    ex = await Exchange.connect(r)
    flow = Flow(ex, seed=seed)
    await asyncio.sleep(max(0.0, start_at - time.time()))
    t0 = time.time()
    done, _ = await throughput(flow, orders, max_s)
    t1 = time.time()
    await ex.close()
    await r.aclose()
    return done, t0, t1, flow.errors


async def throughput_processes(url: str, procs: int, orders: int, max_s: float) -> float:
    """The closed loop in ``procs`` processes at once (each its own Exchange, like web
    nodes); aggregate orders per second."""
    ctx = multiprocessing.get_context("spawn")
    loop = asyncio.get_running_loop()
    start_at = time.time() + 3.0  # after every process has started and connected
    with ProcessPoolExecutor(procs, mp_context=ctx) as pool:
        jobs = [
            loop.run_in_executor(
                pool, _throughput_process, url, 100 + k, orders // procs, max_s, start_at
            )
            for k in range(procs)
        ]
        results = await asyncio.gather(*jobs)
    done = sum(r[0] for r in results)
    return done / (max(r[2] for r in results) - min(r[1] for r in results))


async def offered(flow: Flow, rate: float, seconds: float) -> tuple[int, float, list[float], int]:
    """Open loop at ``rate`` orders/s for ``seconds`` (at most 2,000 in flight).

    Returns (orders sent, achieved rate, place latencies in ms, orders sent late)."""
    total = int(rate * seconds)
    lat: list[float] = []
    in_flight: set[asyncio.Task[None]] = set()
    late = 0

    async def one() -> None:
        t = time.perf_counter()
        await flow.step()
        lat.append((time.perf_counter() - t) * 1000)

    t0 = time.perf_counter()
    for i in range(total):
        due = t0 + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        elif delay < -0.005:
            late += 1
        if len(in_flight) >= 2_000:
            await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
        task = asyncio.create_task(one())
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)
    sent_s = time.perf_counter() - t0
    if in_flight:
        await asyncio.wait(in_flight, timeout=30)
    return total, total / sent_s, lat, late


async def measure_full_path(
    url: str,
    quick: bool = False,
    profile: str | None = None,
    rate: int = OFFERED_PER_S,
    profile_settler: str | None = None,
) -> dict[str, Any]:
    """Both phases; ``profile``: write a CPU-time cProfile of the facade's closed loop
    (phase 1, one process) to that file, ``profile_settler``: of the settler process
    in phase 2 -- rates are then not comparable."""
    r = facade_client(url)
    ex = await setup(r)
    flow = Flow(ex, seed=11)
    for _ in range(40):  # the book the takers trade against: 2,000 resting orders
        await asyncio.gather(*(flow.rest() for _ in range(50)))
    settler = SettlerProcess(url, profile_settler)
    try:
        await settled(r, 60)
        n_orders, max_s = (8_000, 10.0) if quick else (30_000, 30.0)
        cpu0 = (await valkey_cpu_s(r), time.process_time(), settler.ask("cpu"))
        profiler = cProfile.Profile(time.process_time) if profile else None
        if profiler is not None:
            profiler.enable()
        placed, elapsed = await throughput(flow, n_orders, max_s)
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(str(profile))
        backlog_s = await settled(r, 60)
        cpu1 = (await valkey_cpu_s(r), time.process_time(), settler.ask("cpu"))
        cpu_us = [round((b - a) * 1e6 / placed, 1) for a, b in zip(cpu0, cpu1, strict=True)]
        rate_2 = await throughput_processes(url, 2, n_orders, max_s)
        await settled(r, 60)
        settler.ask("reset")
        cpu_offered0 = settler.ask("cpu")
        sent, achieved, lat, late = await offered(flow, rate, 3.0 if quick else 8.0)
        await settled(r, 60)
        settler_offered_us = round((settler.ask("cpu") - cpu_offered0) * 1e6 / sent, 1)
        lags = settler.ask("lags")
    finally:
        settler.stop()
        await ex.close()
        await r.aclose()
    return {
        "facade_client": "batching" if batched() else "redis-py",
        "full_path_orders_per_s": round(max(placed / elapsed, rate_2)),
        "full_path_1proc_orders_per_s": round(placed / elapsed),
        "full_path_2proc_orders_per_s": round(rate_2),
        "full_path_backlog_drain_s": round(backlog_s, 2),
        "cpu_us_per_order_valkey": cpu_us[0],
        "cpu_us_per_order_facade": cpu_us[1],
        "cpu_us_per_order_settler": cpu_us[2],
        "offered_orders_per_s": rate,
        "offered_orders": sent,
        "achieved_orders_per_s": round(achieved),
        "late_sends": late,
        "cpu_us_per_order_settler_offered": settler_offered_us,
        "place_p50_ms": round(pct(lat, 0.5), 2),
        "place_p99_ms": round(pct(lat, 0.99), 2),
        "settle_entries": len(lags),
        "settle_lag_p50_ms": round(pct(lags, 0.5), 2),
        "settle_lag_p99_ms": round(pct(lags, 0.99), 2),
        "full_path_errors": sum(flow.errors.values()),
        "full_path_error_codes": ",".join(sorted(flow.errors)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--url", help="a loopback Redis/Valkey (FLUSHED!) instead of a new one")
    parser.add_argument("--profile", metavar="FILE", help="cProfile (CPU time) of the facade")
    parser.add_argument("--rate", type=int, default=OFFERED_PER_S, help="phase 2 orders/s")
    parser.add_argument("--profile-settler", metavar="FILE", help="settler cProfile, phase 2")
    args = parser.parse_args()
    if args.url:
        if not args.url.startswith(("redis://127.0.0.1", "redis://localhost", "redis://[::1]")):
            sys.exit("benchmarks only target loopback servers")
        result = asyncio.run(
            measure_full_path(args.url, args.quick, args.profile, args.rate, args.profile_settler)
        )
    else:
        from ops.bench.servers import bench_valkey

        with bench_valkey() as url:
            result = asyncio.run(
                measure_full_path(url, args.quick, args.profile, args.rate, args.profile_settler)
            )
    for key, value in result.items():
        print(f"  {key.ljust(28)}  {value}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
