"""Matching engine benchmark: no-op FCALL vs the engine's place/cancel mix, one run.

Starts its own Valkey on a free loopback port, rests 10,000 orders near the mid,
then measures side by side (a) a no-op FCALL and (b) a realistic mix (60% resting
limits near the mid, 30% crossing IOC orders taking 1-3 resting orders, 10% cancels
of live resting orders), each one call at a time (latency) and pipelined in batches
of 200 (throughput). With ``--full-path`` it also runs hold + place + settlement of
the resulting events (``ops/bench/full_path.py``).

    python -m ops.bench.engine [--quick] [--full-path]

How it stays honest on a shared, noisy machine:

- the two workloads run in interleaved rounds (noop, engine, engine, noop, ...
  alternating the order every round) after an unmeasured warm-up, and rates are the
  median over rounds; latency percentiles pool every call of every round;
- only the calls are timed: generating the commands and reading the engine's
  replies (to track which resting orders are still live) happen outside the timed
  spans, for both workloads alike; arguments are what ``engine.market`` sends;
- the book stays near 10,000 resting orders: rests add one lot each, takers take
  1/2/3 lots with probability 1/2, 1/3, 1/6 (1.67 orders on average), cancels target
  orders that are still resting, so the flow balances; timestamps are real;
- it also reports the server's own time per call by kind (``INFO commandstats``
  around a rest-only, a cross-only and a cancel-only phase);
- as a yardstick it runs, interleaved with the others, the issue's reference: a
  function that only rests one order with its XADD (``REFERENCE_LIB``: ZADD, HSET,
  XADD, one JSON event; same arguments as a resting place, keys apart from the
  engine's). ``reference_ratio`` is its pipelined rate over the no-op's,
  ``engine_vs_reference`` the engine's over its own, both from the same rounds.

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

import orjson
import redis.asyncio as aredis

from engine import keys
from engine import market as M
from engine.functions import ensure_loaded
from ops.bench.markets import usd_market
from ops.bench.servers import bench_valkey

MARKET = usd_market("BENCH")
MID = 10_000 * MARKET.tick  # 100.00 in ticks of 0.01
CFG = keys.market_cfg(MARKET.id)
BOOK = 10_000
BATCH = 200

Cmd = list[Any]

# The yardstick: rest one order and append its event, nothing else.
REFERENCE_LIB = """#!lua name=hftxbench
redis.register_function('bench_rest', function(keys, argv)
  local P = string.sub(keys[1], 1, #keys[1] - 3)
  local id, u, side, price, amount = argv[1], argv[2], argv[3], argv[7], argv[8]
  redis.call('ZADD', P .. 'ref:' .. side, price, id)
  redis.call('HSET', P .. 'ref:o:' .. id, 'u', u, 'side', side, 'price', price,
             'amount', amount, 'ts', argv[12])
  local json = '[{"e":"accepted","id":"' .. id .. '","u":"' .. u .. '","side":"' ..
    side .. '","price":' .. price .. ',"amount":' .. amount .. '}]'
  redis.call('XADD', P .. 'ref:ev', '*', 'e', json)
  return {'ok', json}
end)
"""


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class Mix:
    """Generates FCALL argument lists for the place/cancel mix and tracks the live book.

    ``observe`` reads an engine reply and forgets the resting orders it finished, so
    cancels target orders that are still on the book."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.n = 0
        self.live: list[tuple[str, str]] = []  # (order id, user)
        self.index: dict[str, int] = {}

    def _id(self) -> str:
        self.n += 1
        return f"b{self.n}"

    def _forget(self, oid: str) -> None:
        i = self.index.pop(oid, None)
        if i is None:
            return
        last = self.live.pop()
        if last[0] != oid:
            self.live[i] = last
            self.index[last[0]] = i

    def rest(self, side: str | None = None) -> Cmd:
        side = side or self.rng.choice(["buy", "sell"])
        offset = self.rng.randint(1, 50) * MARKET.tick
        price = MID - offset if side == "buy" else MID + offset
        oid = self._id()
        user = f"u{self.rng.randint(1, 500)}"
        self.index[oid] = len(self.live)
        self.live.append((oid, user))
        return ["mkt_place", 1, CFG, oid, user, side, "limit", "GTC", 0, price,
                MARKET.lot, 0, "cancel_newest", "", now_ms(), ""]  # fmt: skip

    def cross(self, lots: int | None = None) -> Cmd:
        side = self.rng.choice(["buy", "sell"])
        price = MID + 60 * MARKET.tick if side == "buy" else MID - 60 * MARKET.tick
        if lots is None:  # mean 5/3: balances 60% rests of one lot with 10% cancels
            lots = self.rng.choices((1, 2, 3), weights=(3, 2, 1))[0]
        return ["mkt_place", 1, CFG, self._id(), "taker", side, "limit", "IOC", 0, price,
                lots * MARKET.lot, 0, "cancel_newest", "", now_ms(), ""]  # fmt: skip

    def cancel(self) -> Cmd:
        oid, user = self.live[self.rng.randrange(len(self.live))]
        self._forget(oid)
        return ["mkt_cancel", 1, CFG, oid, user, now_ms()]

    def next(self) -> Cmd:
        r = self.rng.random()
        if r < 0.6 or not self.live:
            return self.rest()
        if r < 0.9:
            return self.cross()
        return self.cancel()

    def observe(self, reply: Any) -> None:
        """Forget the resting orders a place call finished (maker fills)."""
        if not isinstance(reply, list) or len(reply) != 7 or b'"done"' not in reply[1]:
            return
        for event in orjson.loads(reply[1]):
            if event["e"] == "done":
                self._forget(event["id"])


def noop() -> Cmd:
    return ["hftx_version", 0]


def reference(mix: Mix) -> Callable[[], Cmd]:
    """The reference workload: resting places, as the mix makes them, to ``bench_rest``."""

    def make() -> Cmd:
        cmd = mix.rest()
        mix._forget(cmd[3])  # rests apart from the engine's book
        return ["bench_rest", *cmd[1:]]

    return make


async def prepare(r: Any, resting: int) -> Mix:
    await r.flushall()
    await ensure_loaded(r)
    await M.configure(r, MARKET, now_ms())
    mix = Mix(seed=7)
    pipe = r.pipeline(transaction=False)
    for i in range(resting):
        pipe.execute_command("FCALL", *mix.rest("buy" if i % 2 else "sell"))
        if len(pipe) >= 500:
            await pipe.execute()
    await pipe.execute()
    return mix


async def single(r: Any, make: Callable[[], Cmd], n: int, mix: Mix | None) -> list[float]:
    """n calls one at a time; returns each call's latency in microseconds."""
    lat = []
    for _ in range(n):
        cmd = make()
        t0 = time.perf_counter()
        try:
            reply = await r.execute_command("FCALL", *cmd)
        except aredis.ResponseError:
            reply = None  # a refused cancel would be part of the mix
        lat.append((time.perf_counter() - t0) * 1e6)
        if mix is not None:
            mix.observe(reply)
    return lat


async def pipelined(r: Any, make: Callable[[], Cmd], n: int, mix: Mix | None) -> float:
    """n calls in pipelines of BATCH; returns calls per second of the timed spans."""
    spent = 0.0
    for start in range(0, n, BATCH):
        cmds = [make() for _ in range(min(BATCH, n - start))]
        t0 = time.perf_counter()
        pipe = r.pipeline(transaction=False)
        for cmd in cmds:
            pipe.execute_command("FCALL", *cmd)
        replies = await pipe.execute(raise_on_error=False)
        spent += time.perf_counter() - t0
        if mix is not None:
            for reply in replies:
                mix.observe(reply)
    return n / spent


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=1000)[int(q * 1000) - 1]


async def fcall_stats(r: Any) -> tuple[int, int]:
    info = await r.info("commandstats")
    s = info.get("cmdstat_fcall", {})
    return int(s.get("calls", 0)), int(s.get("usec", 0))


async def server_us(r: Any, cmds: list[Cmd], mix: Mix) -> float:
    """Server-side microseconds per FCALL of ``cmds`` (commandstats before/after)."""
    calls0, usec0 = await fcall_stats(r)
    for start in range(0, len(cmds), BATCH):
        pipe = r.pipeline(transaction=False)
        for cmd in cmds[start : start + BATCH]:
            pipe.execute_command("FCALL", *cmd)
        for reply in await pipe.execute(raise_on_error=False):
            mix.observe(reply)
    calls1, usec1 = await fcall_stats(r)
    return (usec1 - usec0) / max(1, calls1 - calls0)


async def measure(
    url: str, quick: bool, full_path: Callable[[str, bool], Awaitable[dict[str, Any]]] | None
) -> dict[str, Any]:
    r = aredis.Redis.from_url(url)
    rounds = 5 if quick else 9
    n_single = 1_000 if quick else 2_000  # per workload per round
    n_pipe = 4_000 if quick else 10_000
    mix = await prepare(r, BOOK)
    await r.execute_command("FUNCTION", "LOAD", "REPLACE", REFERENCE_LIB)
    ref = reference(mix)
    await single(r, noop, 300, None)  # warm-up, not measured
    await single(r, mix.next, 300, mix)
    await pipelined(r, mix.next, 2_000, mix)
    noop_lat: list[float] = []
    eng_lat: list[float] = []
    noop_single, eng_single, noop_pipe, eng_pipe, ref_pipe = [], [], [], [], []
    for k in range(rounds):
        for which in ("noop", "engine") if k % 2 == 0 else ("engine", "noop"):
            if which == "noop":
                lat = await single(r, noop, n_single, None)
                noop_lat += lat
                noop_single.append(len(lat) / (sum(lat) / 1e6))
            else:
                lat = await single(r, mix.next, n_single, mix)
                eng_lat += lat
                eng_single.append(len(lat) / (sum(lat) / 1e6))
        for which in ("engine", "noop", "ref") if k % 2 == 0 else ("ref", "noop", "engine"):
            if which == "noop":
                noop_pipe.append(await pipelined(r, noop, n_pipe, None))
            elif which == "ref":
                ref_pipe.append(await pipelined(r, ref, n_pipe, None))
            else:
                eng_pipe.append(await pipelined(r, mix.next, n_pipe, mix))
    # the server's own time per call, by kind (balanced so the book keeps its size)
    n_kind = 1_000 if quick else 3_000
    cross_cmds = [mix.cross() for _ in range(n_kind)]
    rest_us = await server_us(r, [mix.rest() for _ in range(n_kind * 5 // 3)], mix)
    cross_us = await server_us(r, cross_cmds, mix)
    cancel_us = await server_us(r, [mix.cancel() for _ in range(n_kind // 2)], mix)
    ref_us = await server_us(r, [ref() for _ in range(n_kind)], mix)
    await server_us(r, [mix.rest() for _ in range(n_kind // 2)], mix)
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
        "server_us_rest": round(rest_us, 1),
        "server_us_cross": round(cross_us, 1),
        "server_us_cancel": round(cancel_us, 1),
        "server_us_reference": round(ref_us, 1),
        "reference_rest_per_s": round(statistics.median(ref_pipe)),
        "book_orders_end": len(mix.live),
        "book_levels_end": len(depth.bids) + len(depth.asks),
        "rounds": rounds,
    }
    result["ratio"] = round(result["engine_orders_per_s"] / result["noop_fcall_per_s"], 3)
    result["single_ratio"] = round(result["engine_single_per_s"] / result["noop_single_per_s"], 3)
    result["p99_vs_noop"] = round(result["p99_us"] / result["noop_p99_us"], 2)
    result["reference_ratio"] = round(
        result["reference_rest_per_s"] / result["noop_fcall_per_s"], 3
    )
    result["engine_vs_reference"] = round(
        result["engine_orders_per_s"] / result["reference_rest_per_s"], 3
    )
    result["ratio_rounds"] = [round(e / n, 3) for e, n in zip(eng_pipe, noop_pipe, strict=True)]
    result["single_ratio_rounds"] = [
        round(e / n, 3) for e, n in zip(eng_single, noop_single, strict=True)
    ]
    await r.aclose()
    if full_path is not None:
        result.update(await full_path(url, quick))
        result["full_path_ratio"] = round(
            result["full_path_orders_per_s"] / result["engine_orders_per_s"], 3
        )
    return result


def print_table(result: dict[str, Any]) -> None:
    width = max(len(k) for k in result)
    for key, value in result.items():
        print(f"  {key.ljust(width)}  {value}")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter run (under 30 s)")
    parser.add_argument("--url", help="use this loopback Redis/Valkey (FLUSHED!), not a new one")
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
    print(f"hftx engine benchmark (medians of {result['rounds']} interleaved rounds)")
    print_table(result)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
