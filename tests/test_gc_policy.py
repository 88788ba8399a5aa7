"""The garbage-collector policy of the long-running processes (ops.gc_policy)."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator

import pytest

from ops import gc_policy


@pytest.fixture(autouse=True)
def restore_gc() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


def test_the_full_collection_interval_comes_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("HFTX_GC_FULL_S", raising=False)
    assert gc_policy.full_every_s() == gc_policy.DEFAULT_FULL_EVERY_S
    monkeypatch.setenv("HFTX_GC_FULL_S", "2.5")
    assert gc_policy.full_every_s() == 2.5
    for bad in ("soon", "-1"):
        monkeypatch.setenv("HFTX_GC_FULL_S", bad)
        with pytest.raises(SystemExit, match="HFTX_GC_FULL_S"):
            gc_policy.full_every_s()


def test_apply_freezes_startup_and_stops_automatic_full_collections() -> None:
    young, middle, _ = gc.get_threshold()
    assert gc_policy.apply(60.0) is True
    assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == (young, middle, gc_policy.NEVER)


def test_zero_keeps_cpythons_automatic_full_collections() -> None:
    before = gc.get_threshold()
    assert gc_policy.apply(0) is False
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() > 0


class _Cycle:
    def __init__(self) -> None:
        self.me = self


def test_the_timer_collects_cycles_that_young_collections_left() -> None:
    async def scenario() -> int:
        task = gc_policy.start(0.05)
        assert task is not None
        gc.disable()  # nothing else may collect the cycles meanwhile
        try:
            for _ in range(100):
                _Cycle()
            before = gc_policy.FULL_SECONDS.collect()[0].samples
            count_before = next(s.value for s in before if s.name.endswith("_count"))
            await asyncio.sleep(0.3)
            after = gc_policy.FULL_SECONDS.collect()[0].samples
            count_after = next(s.value for s in after if s.name.endswith("_count"))
            left = sum(isinstance(o, _Cycle) for o in gc.get_objects())
        finally:
            gc.enable()
            task.cancel()
        assert count_after > count_before
        return left

    assert asyncio.run(scenario()) == 0


def test_young_false_leaves_only_the_timers_collections() -> None:
    try:
        assert gc_policy.apply(60.0, young=False) is True
        assert not gc.isenabled()
    finally:
        gc.enable()
