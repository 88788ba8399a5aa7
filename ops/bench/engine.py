"""Matching engine benchmark: no-op FCALL vs the engine's place/cancel mix, one run.

Starts its own Valkey on a free loopback port, rests 10,000 orders near the mid,
then measures side by side (a) a no-op FCALL and (b) a realistic mix (about 60%
resting limits near the mid, 30% crossing orders with 1-3 fills, 10% cancels), each
one call at a time (latency) and pipelined (throughput). With ``--full-path`` it
also runs hold + place + settlement of the resulting events (accounts issue).

    python -m ops.bench.engine [--quick]

Prints a table; the last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aredis

from engine import keys
from engine import market as M
from engine.functions import ensure_loaded
from engine.types import Market
from ops.bench.servers import bench_valkey

MARKET = Market(
    id="BENCH-USD",
    base="BENCH",
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
MID = 10_000 * MARKET.tick  # 100.00 in ticks of 0.01
CFG = keys.market_cfg(MARKET.id)


class Mix:
    """Generates FCALL argument lists for the place/cancel mix, tracking resting ids."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.n = 0
        self.resting: list[tuple[str, str]] = []

    def _id(self) -> str:
        self.n += 1
        return f"b{self.n}"

    def rest(self, side: str | None = None) -> list[Any]:
        side = side or self.rng.choice(["buy", "sell"])
        offset = self.rng.randint(1, 50) * MARKET.tick
        price = MID - offset if side == "buy" else MID + offset
        oid = self._id()
        user = f"u{self.rng.randint(1, 500)}"
        self.resting.append((oid, user))
        return [
            "mkt_place",
            1,
            CFG,
            oid,
            user,
            side,
            "limit",
            "GTC",
            0,
            price,
            MARKET.lot,
            0,
            "cancel_newest",
            "",
            1,
            "",
        ]

    def cross(self) -> list[Any]:
        side = self.rng.choice(["buy", "sell"])
        price = MID + 60 * MARKET.tick if side == "buy" else MID - 60 * MARKET.tick
        lots = self.rng.randint(1, 3)
        return [
            "mkt_place",
            1,
            CFG,
            self._id(),
            "taker",
            side,
            "limit",
            "IOC",
            0,
            price,
            lots * MARKET.lot,
            0,
            "cancel_newest",
            "",
            1,
            "",
        ]

    def cancel(self) -> list[Any]:
        i = self.rng.randrange(len(self.resting))
        oid, user = self.resting[i]
        self.resting[i] = self.resting[-1]
        self.resting.pop()
        return ["mkt_cancel", 1, CFG, oid, user, 1]  # already filled sometimes: refused

    def next(self) -> list[Any]:
        r = self.rng.random()
        if r < 0.6 or not self.resting:
            return self.rest()
        if r < 0.9:
            return self.cross()
        return self.cancel()


async def prepare(r: Any, resting: int) -> Mix:
    await r.flushall()
    await ensure_loaded(r)
    await M.configure(r, MARKET, 1)
    mix = Mix(seed=7)
    pipe = r.pipeline(transaction=False)
    for i in range(resting):
        pipe.execute_command("FCALL", *mix.rest("buy" if i % 2 else "sell"))
        if len(pipe) >= 500:
            await pipe.execute()
    await pipe.execute()
    return mix


def noop() -> list[Any]:
    return ["hftx_version", 0]


async def single(r: Any, make: Callable[[], list[Any]], n: int) -> tuple[float, list[float]]:
    lat = []
    start = time.perf_counter()
    for _ in range(n):
        cmd = make()
        t0 = time.perf_counter()
        try:
            await r.execute_command("FCALL", *cmd)
        except aredis.ResponseError:
            pass  # a refused cancel is part of the mix
        lat.append((time.perf_counter() - t0) * 1e6)
    return n / (time.perf_counter() - start), lat


async def pipelined(r: Any, make: Callable[[], list[Any]], n: int, batch: int = 200) -> float:
    cmds = [make() for _ in range(n)]
    start = time.perf_counter()
    for i in range(0, n, batch):
        pipe = r.pipeline(transaction=False)
        for cmd in cmds[i : i + batch]:
            pipe.execute_command("FCALL", *cmd)
        await pipe.execute(raise_on_error=False)
    return n / (time.perf_counter() - start)


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=1000)[int(q * 1000) - 1]


async def measure(
    url: str, quick: bool, full_path: Callable[[str], Awaitable[dict[str, float]]] | None
) -> dict[str, Any]:
    r = aredis.Redis.from_url(url)
    n_single = 5_000 if quick else 30_000
    n_pipe = 20_000 if quick else 120_000
    mix = await prepare(r, 10_000)
    # interleave the two workloads in rounds so drift on a noisy machine hits both
    noop_single, noop_lat, eng_single, eng_lat = [], [], [], []
    noop_pipe, eng_pipe = [], []
    rounds = 3
    for _ in range(rounds):
        rate, lat = await single(r, noop, n_single // rounds)
        noop_single.append(rate)
        noop_lat += lat
        rate, lat = await single(r, mix.next, n_single // rounds)
        eng_single.append(rate)
        eng_lat += lat
        noop_pipe.append(await pipelined(r, noop, n_pipe // rounds))
        eng_pipe.append(await pipelined(r, mix.next, n_pipe // rounds))
    depth = await M.depth(r, MARKET.id, 1_000_000)
    result: dict[str, Any] = {
        "noop_fcall_per_s": round(statistics.median(noop_pipe)),
        "engine_orders_per_s": round(statistics.median(eng_pipe)),
        "noop_single_per_s": round(statistics.median(noop_single)),
        "engine_single_per_s": round(statistics.median(eng_single)),
        "noop_p50_us": round(pct(noop_lat, 0.5), 1),
        "noop_p99_us": round(pct(noop_lat, 0.99), 1),
        "p50_us": round(pct(eng_lat, 0.5), 1),
        "p99_us": round(pct(eng_lat, 0.99), 1),
        "book_levels_end": len(depth.bids) + len(depth.asks),
    }
    result["ratio"] = round(result["engine_orders_per_s"] / result["noop_fcall_per_s"], 3)
    result["single_ratio"] = round(result["engine_single_per_s"] / result["noop_single_per_s"], 3)
    result["p99_vs_noop"] = round(result["p99_us"] / result["noop_p99_us"], 2)
    if full_path is not None:
        result.update(await full_path(url))
        result["full_path_ratio"] = round(
            result["full_path_orders_per_s"] / result["engine_orders_per_s"], 3
        )
    await r.aclose()
    return result


def print_table(result: dict[str, Any]) -> None:
    width = max(len(k) for k in result)
    for key, value in result.items():
        print(f"  {key.ljust(width)}  {value}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter run (under 30 s)")
    parser.add_argument("--url", help="use this loopback Redis/Valkey instead of starting one")
    parser.add_argument("--full-path", action="store_true", help="also measure hold+place+settle")
    args = parser.parse_args()
    full_path = None
    if args.full_path:
        from ops.bench.full_path import measure_full_path

        full_path = measure_full_path
    if args.url:
        if not args.url.startswith(("redis://127.0.0.1", "redis://localhost", "redis://[::1]")):
            sys.exit("benchmarks only target loopback servers")
        result = asyncio.run(measure(args.url, args.quick, full_path))
    else:
        with bench_valkey() as url:
            result = asyncio.run(measure(url, args.quick, full_path))
    print("hftx engine benchmark (median of 3 interleaved rounds)")
    print_table(result)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
