"""Hold reconciler: a hold whose order never reached the market is released, and
the order id can then never be placed (fake + real)."""

from __future__ import annotations

from typing import Any

import pytest

from engine import accounts, registry
from engine import market as M
from engine.types import Balance, EngineError, OrderRequest
from tests.test_accounts_support import BTC_USD, COIN, fund, setup_assets
from workers import jobs
from workers.reconciler import reconcile_holds

PRICE = 30_000 * COIN
NOW = 1_700_000_000_000


@pytest.fixture
async def r(redis: Any) -> Any:
    await setup_assets(redis)
    await registry.create_market(redis, BTC_USD, NOW)
    await fund(redis, "alice", "USD", 100_000 * COIN)
    return redis


def bid(amount: int = COIN) -> OrderRequest:
    return OrderRequest(market="BTC-USD", side="buy", type="limit", amount=amount, price=PRICE)


async def test_orphan_hold_is_released_and_its_order_id_tombstoned(r: Any) -> None:
    await accounts.hold(r, "alice", "101", "BTC-USD", "USD", PRICE, now=NOW)
    result = await reconcile_holds(r, min_age_ms=5000, now=NOW + 5000)
    assert result.released == [("alice", "101")]
    assert await accounts.balance(r, "alice", "USD") == Balance("USD", 100_000 * COIN, 0, 0)
    with pytest.raises(EngineError) as info:  # the late place is refused
        await M.place(r, "101", "alice", bid(), NOW + 6000)
    assert info.value.code == "UNKNOWN_ORDER"
    assert (await reconcile_holds(r, now=NOW + 9000)).released == []
    assert await accounts.index_members(r, "holders") == []  # no holds left: unindexed


async def test_a_sweep_cut_between_tombstone_and_release_is_finished_by_the_next(
    r: Any,
) -> None:
    """Redis went down after the tombstone, before the release: the next sweep releases."""
    await accounts.hold(r, "alice", "104", "BTC-USD", "USD", PRICE, now=NOW)
    assert await M.tombstone(r, "BTC-USD", "104", NOW + 5000)
    result = await reconcile_holds(r, min_age_ms=5000, now=NOW + 5000)
    assert result.released == [("alice", "104")]
    assert await accounts.balance(r, "alice", "USD") == Balance("USD", 100_000 * COIN, 0, 0)


async def test_holds_of_placed_or_young_orders_stay(r: Any) -> None:
    await accounts.hold(r, "alice", "101", "BTC-USD", "USD", PRICE, now=NOW)
    await M.place(r, "101", "alice", bid(), NOW)
    await accounts.hold(r, "alice", "102", "BTC-USD", "USD", PRICE, now=NOW + 4000)
    seen: set[tuple[str, str]] = set()
    result = await reconcile_holds(r, min_age_ms=5000, now=NOW + 5000, seen=seen)
    assert result.released == [] and seen == {("BTC-USD", "101")}
    assert (await reconcile_holds(r, min_age_ms=5000, now=NOW + 5000, seen=seen)).checked == 0
    assert await accounts.balance(r, "alice", "USD") == Balance(
        "USD", 100_000 * COIN - 2 * PRICE, 2 * PRICE, 0
    )


async def test_arq_cron_job_releases_orphans(r: Any) -> None:
    await accounts.hold(r, "alice", "103", "BTC-USD", "USD", PRICE, now=NOW)
    assert await jobs.reconcile({"engine": r}) == 1
    assert await accounts.holds(r, "alice") == []
    # scheduled, wrapped so that a run meeting Redis down is skipped
    assert any(
        getattr(c.coroutine, "__wrapped__", None) is jobs.reconcile
        for c in jobs.WorkerSettings.cron_jobs
    )


async def test_known_orders_are_forgotten_once_their_hold_is_gone(r: Any) -> None:
    """The worker keeps ``seen`` for its lifetime: it must not grow with every order
    that ever rested (a soak run's worker only ever added to it)."""
    seen: set[tuple[str, str]] = set()
    for oid in ("201", "202"):
        await accounts.hold(r, "alice", oid, "BTC-USD", "USD", PRICE, now=NOW)
        await M.place(r, oid, "alice", bid(), NOW)
    await reconcile_holds(r, min_age_ms=5000, now=NOW + 5000, seen=seen)
    assert seen == {("BTC-USD", "201"), ("BTC-USD", "202")}
    await M.cancel(r, "BTC-USD", "201", "alice", NOW + 6000)
    await accounts.release(r, "alice", "201", now=NOW + 6000)  # as the settler does
    result = await reconcile_holds(r, min_age_ms=5000, now=NOW + 7000, seen=seen)
    assert result.released == [] and seen == {("BTC-USD", "202")}
    await M.cancel(r, "BTC-USD", "202", "alice", NOW + 8000)
    await accounts.release(r, "alice", "202", now=NOW + 8000)
    await reconcile_holds(r, min_age_ms=5000, now=NOW + 9000, seen=seen)
    assert seen == set()
