"""Garbage-collector policy of the long-running processes (web node, settler, drain).

CPython's automatic full collection scans every tracked object. A web node holding a
thousand sockets tracks ~180,000 objects, so each full collection stops its event
loop for 40-90 ms, and under load one runs every few seconds (whenever the objects
that survived young collections grew by a quarter): that pause, not the work, was
the p99 of book pushes to 1,000 subscribers (57-98 ms with it, 37-39 ms without;
docs/perf.md, "Garbage collection").

The policy, applied by each process's entry point once it has started (never by
the library code that tests import):

- the objects of startup (modules, the app, its tables) are frozen: no collection
  scans them again;
- young collections (generations 0 and 1) stay automatic: they are short, their cost
  is proportional to what was allocated since the last one (the drain turns them off:
  a batch's thousands of containers live until written, so young collections only
  traversed each of them twice, ~2 us of CPU per trade, and it makes about 60
  objects of cyclic garbage per 60,000 entries);
- the full collection runs on a timer, every ``HFTX_GC_FULL_S`` seconds (default
  60; ``0`` keeps CPython's automatic full collections). Garbage that only a full
  collection finds (cycles that outlived two young collections) lives up to that
  long: memory, not correctness.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import time

from prometheus_client import Histogram

log = logging.getLogger("hftx.gc")

DEFAULT_FULL_EVERY_S = 60.0
NEVER = 1 << 30  # a generation-2 threshold no count of generation-1 collections reaches

FULL_SECONDS = Histogram(
    "hftx_gc_full_collection_seconds",
    "Duration of the timed full garbage collections",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
)


def full_every_s() -> float:
    """``HFTX_GC_FULL_S``: seconds between full collections (0: CPython's own)."""
    raw = os.environ.get("HFTX_GC_FULL_S", "")
    try:
        value = float(raw) if raw.strip() else DEFAULT_FULL_EVERY_S
    except ValueError:
        raise SystemExit(f"HFTX_GC_FULL_S must be a number of seconds, got {raw!r}") from None
    if value < 0:
        raise SystemExit(f"HFTX_GC_FULL_S must be >= 0, got {raw!r}")
    return value


def apply(every_s: float, young: bool = True) -> bool:
    """Freeze what exists now; with ``every_s`` > 0 stop automatic full collections
    (the caller then runs :func:`full_collections`), and the young ones too unless
    ``young``. True if the timer is needed."""
    gc.collect()
    gc.freeze()
    if every_s <= 0:
        return False
    if not young:
        gc.disable()  # gc.collect() still works: the timer's collections remain
        return True
    gen0, gen1, _ = gc.get_threshold()
    gc.set_threshold(gen0, gen1, NEVER)
    return True


def collect_full() -> int:
    """One full collection, timed; the number of unreachable objects it found."""
    started = time.perf_counter()
    found = gc.collect()
    spent = time.perf_counter() - started
    FULL_SECONDS.observe(spent)
    log.debug("full collection: %d unreachable objects, %.1f ms", found, spent * 1000)
    return found


async def full_collections(every_s: float) -> None:
    """Run a full collection every ``every_s`` seconds, until cancelled."""
    while True:
        await asyncio.sleep(every_s)
        collect_full()


def start(every_s: float | None = None, young: bool = True) -> asyncio.Task[None] | None:
    """Apply the policy in the running event loop: the timer's task, or None when
    CPython's automatic full collections were kept. ``young=False`` is for a process
    whose objects mostly live until a batch is done and that makes next to no cyclic
    garbage (the drain): young collections would only traverse them again."""
    every = full_every_s() if every_s is None else every_s
    if not apply(every, young):
        return None
    return asyncio.get_running_loop().create_task(full_collections(every), name="gc-full")
