"""Reconcile: every balance recomputed from the ledger equals Redis exactly, at a
stream position, even while trading goes on; any tampering shows."""

from __future__ import annotations

import asyncio

import psycopg

from ops.bench.drain import ExchangeLoad
from snapshots.reconcile import balances_of, compare, reconcile
from workers.drain import Drain, DrainConfig


def drain(redis, db_url: str) -> Drain:
    return Drain(redis, db_url, DrainConfig(claim_idle_ms=100, block_ms=10, maintain_s=0.05))


def test_compare_is_exact_per_asset_and_field():
    live = balances_of({"BTC:a": "5", "BTC:h": "2", "USD:e": "0"})
    assert live == {"BTC": {"available": 5, "held": 2, "escrow": 0},
                    "USD": {"available": 0, "held": 0, "escrow": 0}}  # fmt: skip
    same = {"BTC": {"available": 5, "held": 2, "escrow": 0}}
    assert compare("u", live, same) == []
    off = compare("u", live, {"BTC": {"available": 5, "held": 3, "escrow": 0}})
    assert [(m.asset, m.field, m.redis, m.ledger) for m in off] == [("BTC", "held", 2, 3)]


async def test_after_a_long_random_run_everything_matches(redis_real, db_url):
    load = ExchangeLoad(redis_real, seed=21, users=6)
    await load.setup()
    d = drain(redis_real, db_url)
    for _ in range(6):
        await load.run(250)
        await load.settle()
        await d.catch_up(timeout_s=120)
    await d.close()
    rep = await reconcile(redis_real, db_url)
    assert rep.ok, (rep.mismatches[:5], rep.not_drained[:5])
    assert rep.accounts >= 7 and rep.balances >= 14  # users + the fee account, 2 assets
    assert rep.conserved, rep.conservation
    deposited = rep.conservation[load.market.quote]["deposited"]
    assert deposited >= 6 * 10**15 and rep.conservation[load.market.quote]["withdrawn"] > 0


async def test_matches_at_stream_positions_while_trading(redis_real, db_url):
    load = ExchangeLoad(redis_real, seed=22)
    await load.setup()
    stop = asyncio.Event()
    d = drain(redis_real, db_url)
    drainer = asyncio.create_task(d.run(stop))

    async def trade() -> None:
        while not stop.is_set():
            await load.step()
            await asyncio.sleep(0)

    trader = asyncio.create_task(trade())
    try:
        for _ in range(3):
            await asyncio.sleep(0.5)
            rep = await reconcile(redis_real, db_url, wait_s=20)
            assert rep.ok, (rep.mismatches[:5], rep.not_drained[:5])
            assert rep.balances > 0
    finally:
        stop.set()
        await trader
        await drainer


async def test_tampering_and_lag_are_reported(redis_real, db_url):
    load = ExchangeLoad(redis_real, seed=23)
    await load.setup()
    await load.run(100)
    await load.settle()
    d = drain(redis_real, db_url)
    await d.catch_up()
    assert (await reconcile(redis_real, db_url)).ok
    # a balance changed behind the ledger's back
    user = load.users[0]
    await redis_real.hincrby(f"{{u:{user}}}:bal", f"{load.market.quote}:a", 1)
    rep = await reconcile(redis_real, db_url)
    assert [(m.user, m.asset, m.field, m.redis - m.ledger) for m in rep.mismatches] == [
        (user, load.market.quote, "available", 1)
    ]
    await redis_real.hincrby(f"{{u:{user}}}:bal", f"{load.market.quote}:a", -1)
    # a forged ledger row (inserting is all the application role may do)
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
        await conn.execute(
            "INSERT INTO ledger_entries (user_id, entry_ms, entry_seq, idx, leg, kind, asset,"
            " available, held, escrow, ts) VALUES (%s, 1, 0, 0, 0, 'deposit', %s, 7, 0, 0, 1)",
            (load.users[1], load.market.base),
        )
    rep = await reconcile(redis_real, db_url)
    assert [(m.user, m.field, m.ledger - m.redis) for m in rep.mismatches] == [
        (load.users[1], "available", 7)
    ]
    # activity the drain has not written yet: reported, not guessed
    await load.run(30)
    rep = await reconcile(redis_real, db_url, wait_s=0)
    assert rep.not_drained and not rep.ok
    await d.close()
