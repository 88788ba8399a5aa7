"""The drain: stream entries -> PostgreSQL exactly once (in-process drains)."""

from __future__ import annotations

import itertools

import orjson
import pytest

from ops.bench.drain import LOAD_MARKET, EngineLoad, emitted_trades
from tests.drain_helpers import assert_orders_and_candles_match, rows
from workers import candles, streams
from workers.drain import Drain, DrainConfig

MKT = LOAD_MARKET.id
STREAM = f"{{m:{MKT}}}:ev"


def cfg(**kw) -> DrainConfig:
    base = dict(claim_idle_ms=200, maintain_s=0.05, block_ms=20, trim_require=("keep-all",))
    base.update(kw)
    return DrainConfig(**base)


async def test_engine_events_land_once_with_orders_and_candles(redis_real, db_url):
    load = EngineLoad(redis_real, seed=3)
    await load.setup()
    await load.run(400)
    drain = Drain(redis_real, db_url, cfg(count=50))
    try:
        await drain.catch_up(timeout_s=60)
        await load.run(200)
        await drain.catch_up(timeout_s=60)
    finally:
        await drain.close()
    emitted = await emitted_trades(redis_real, MKT)
    assert len(emitted) > 50
    got = await rows(db_url, "SELECT market, trade_id FROM trades ORDER BY trade_id")
    assert got == emitted
    # every market entry is recorded, seqs contiguous from 1
    seqs = await rows(db_url, "SELECT first_seq, last_seq FROM market_events ORDER BY first_seq")
    assert seqs[0][0] == 1 and all(a[1] + 1 == b[0] for a, b in itertools.pairwise(seqs))
    await assert_orders_and_candles_match(redis_real, db_url, MKT)
    market = await rows(
        db_url, "SELECT base, quote, tick, lot, status FROM markets WHERE id = %s", MKT
    )
    assert market == [("DRN", "USD", LOAD_MARKET.tick, LOAD_MARKET.lot, "TRADING")]
    group = next(g for g in await streams.groups(redis_real, STREAM) if g.name == "drain")
    assert group.pending == 0 and group.lag == 0


async def test_redelivered_entries_insert_nothing(redis_real, db_url):
    load = EngineLoad(redis_real, seed=4)
    await load.setup()
    await load.run(150)
    first = Drain(redis_real, db_url, cfg())
    await first.catch_up()
    await first.close()
    before = await rows(db_url, "SELECT count(*), sum(trades) FROM candles")
    n_trades = await rows(db_url, "SELECT count(*) FROM trades")
    # a second, independent group re-reads everything: all conflicts, nothing added
    again = Drain(redis_real, db_url, cfg(group="drain2"))
    await again.catch_up()
    await again.close()
    assert again.committed > 0
    assert await rows(db_url, "SELECT count(*), sum(trades) FROM candles") == before
    assert await rows(db_url, "SELECT count(*) FROM trades") == n_trades


async def test_account_entries_become_ledger_and_wallet_rows(redis_real, db_url):
    await redis_real.sadd("{g}:accounts", "a1", "a2")
    ev = [
        {"e": "deposit", "ts": 1, "id": "d1", "asset": "USD", "amount": 1000},
        {"e": "hold", "ts": 2, "id": "o1", "market": "BTC-USD", "asset": "USD", "amount": 300},
    ]
    await redis_real.xadd("{u:a1}:ev", {"e": orjson.dumps(ev)})
    fill = {
        "e": "fill", "ts": 3, "market": "BTC-USD", "id": "o1", "tid": 7, "liq": "taker",
        "out": "USD", "paid": 300, "in": "BTC", "got": 50, "fee": 1,
    }  # fmt: skip
    await redis_real.xadd("{u:a1}:ev", {"e": orjson.dumps([fill])})
    out = {"e": "transfer_out", "ts": 4, "id": "t1", "to": "a2", "asset": "USD", "amount": 100}
    await redis_real.xadd("{u:a1}:ev", {"e": orjson.dumps([out])})
    tin = {"e": "transfer_in", "ts": 5, "id": "t1", "from": "a1", "asset": "USD", "amount": 100}
    await redis_real.xadd("{u:a2}:ev", {"e": orjson.dumps([tin])})
    w = {"e": "withdraw_req", "ts": 6, "id": "w1", "asset": "BTC", "amount": 10, "address": "x1"}
    wd = {"e": "withdraw_done", "ts": 7, "id": "w1", "asset": "BTC", "amount": 10}
    await redis_real.xadd("{u:a1}:ev", {"e": orjson.dumps([w])})
    await redis_real.xadd("{u:a1}:ev", {"e": orjson.dumps([wd])})
    # P2P (lua/30_p2p.lua): escrow for a sell offer, snapshots, a release to a2
    offer = {
        "e": "p2p_offer", "ts": 8, "id": "of1", "u": "a1", "side": "sell", "asset": "BTC",
        "fiat": "EUR", "status": "OPEN", "price": 100, "min": 1, "max": 5, "amount": 5,
        "locked": 0, "filled": 0, "window": 15, "cts": 8, "uts": 8, "v": 1, "methods": ["SEPA"],
    }  # fmt: skip
    esc = {"e": "escrow", "ts": 8, "id": "of1", "asset": "BTC", "amount": 5, "reason": "offer"}
    await redis_real.xadd("{u:a1}:ev", {"e": orjson.dumps([esc, offer])})
    trade = {
        "e": "p2p_trade", "ts": 9, "id": "pt1", "offer": "of1", "oside": "sell", "seller": "a1",
        "buyer": "a2", "asset": "BTC", "fiat": "EUR", "status": "RELEASED", "act": "release",
        "dispute_by": "", "dispute_reason": "", "resolution": "", "resolved_by": "",
        "price": 100, "amount": 2, "fiat_amount": 200, "window": 15, "cts": 9, "uts": 9,
        "exp": 900009, "paid_ts": 9, "dispute_ts": 0, "v": 3, "methods": ["SEPA"],
    }  # fmt: skip
    older = {**trade, "status": "PENDING", "v": 1}
    une = {"e": "unescrow", "ts": 9, "id": "pt1", "asset": "BTC", "amount": 2, "reason": "release"}
    pay = {"e": "transfer_out", "ts": 9, "id": "p2p:pt1", "to": "a2", "asset": "BTC", "amount": 2}
    msg = {"e": "p2p_msg", "n": 1, "trade": "pt1", "from": "a2", "role": "buyer", "ts": 9,
           "body": "paid"}  # fmt: skip
    await redis_real.xadd("{u:a1}:ev", {"e": orjson.dumps([trade, une, pay, msg])})
    await redis_real.xadd("{u:a1}:ev", {"e": orjson.dumps([older])})  # stale snapshot
    drain = Drain(redis_real, db_url, cfg())
    await drain.catch_up()
    await drain.close()
    bal = dict(
        ((u, a), (int(av), int(h)))
        for u, a, av, h in await rows(
            db_url,
            "SELECT user_id, asset, sum(available), sum(held) FROM ledger_entries"
            " GROUP BY user_id, asset",
        )
    )
    assert bal == {
        ("a1", "USD"): (1000 - 300 - 100, 0),
        ("a1", "BTC"): (49 - 10 - 5, 0),
        ("a2", "USD"): (100, 0),
    }
    escrow = await rows(
        db_url, "SELECT sum(escrow) FROM ledger_entries WHERE user_id = 'a1' AND asset = 'BTC'"
    )
    assert escrow == [(5 - 2,)]
    assert await rows(db_url, "SELECT id, status, version, methods FROM p2p_trades") == [
        ("pt1", "RELEASED", 3, ["SEPA"])
    ]
    assert await rows(db_url, "SELECT id, amount, window_min FROM p2p_offers") == [("of1", 5, 15)]
    assert await rows(db_url, "SELECT trade_id, n, sender, body FROM p2p_messages") == [
        ("pt1", 1, "a2", "paid")
    ]
    assert await rows(db_url, "SELECT id, user_id, amount FROM deposits") == [("d1", "a1", 1000)]
    assert await rows(db_url, "SELECT id, status, address FROM withdrawals") == [
        ("w1", "COMPLETED", "x1")
    ]
    assert await rows(
        db_url, "SELECT id, from_user, to_user, ts, credited_ts FROM transfers ORDER BY id"
    ) == [("p2p:pt1", "a1", "a2", 9, None), ("t1", "a1", "a2", 4, 5)]


@pytest.mark.parametrize("n", [1, 3])
async def test_read_group_parses_raw_and_decoded_replies(redis_real, n):
    stream = "{m:RD-USD}:ev"
    ids = [(await redis_real.xadd(stream, {"f": i + 1, "l": i + 1, "e": "[]"})).decode()
           for i in range(n)]  # fmt: skip
    await streams.ensure_group(redis_real, stream, "g")
    for client in (redis_real, streams.raw_reader(redis_real)):
        await redis_real.xgroup_setid(stream, "g", "0")
        got = await streams.read_group(client, "g", "c", [stream], 10, 100)
        assert [e.id for e in got] == ids
        fields = [f if isinstance(f, dict) else dict(zip(f[::2], f[1::2], strict=True))
                  for f in (e.fields for e in got)]  # fmt: skip
        assert [f[b"f"] for f in fields] == [str(i + 1).encode() for i in range(n)]


async def test_two_drains_share_the_streams_exactly_once(redis_real, db_url):
    import asyncio

    load = EngineLoad(redis_real, seed=31)
    await load.setup()
    stop = asyncio.Event()
    drains = [Drain(redis_real, db_url, cfg(count=3)) for _ in range(2)]
    tasks = [asyncio.create_task(d.run(stop)) for d in drains]
    await load.run(600)
    await asyncio.sleep(0.3)
    stop.set()
    await asyncio.gather(*tasks)
    last = Drain(redis_real, db_url, cfg())
    await last.catch_up()
    await last.close()
    assert all(d.committed > 0 for d in drains)  # both did part of the work
    assert await rows(db_url, "SELECT market, trade_id FROM trades ORDER BY trade_id") == (
        load.trades
    )
    final = dict(await rows(db_url, "SELECT id, status FROM orders WHERE status <> 'NEW'"))
    assert final == load.final
    # amounts as the engine left them, whatever order the two drains committed in
    for oid, amount, filled in await rows(
        db_url, "SELECT id, amount, filled FROM orders WHERE status <> 'NEW'"
    ):
        rec = await redis_real.hgetall(f"{{m:{MKT}}}:o:{oid}")
        if rec:
            record = {k.decode(): v.decode() for k, v in rec.items()}
            assert (amount, filled) == (int(record["amount"]), int(record["filled"])), oid
    trades = await rows(db_url, "SELECT market, trade_id, price, size, quote, ts FROM trades")
    want = {c.key: (c.volume, c.trades) for c in candles.aggregate(trades)}
    have = {
        (r[0], r[1], r[2]): (int(r[3]), r[4])
        for r in await rows(
            db_url, "SELECT market, interval, start_ts, volume, trades FROM candles"
        )
    }
    assert have == want


async def test_a_running_drain_picks_up_a_new_market_within_moments(redis_real, db_url):
    """A market created after the drain started is read after the next probe of the
    registry's size (0.1 s), not at its next full re-read (here a minute away)."""
    import asyncio
    import time

    stop = asyncio.Event()
    drain = Drain(redis_real, db_url, cfg(refresh_s=60))
    task = asyncio.create_task(drain.run(stop))
    try:
        await asyncio.sleep(0.3)  # running, with no stream yet
        load = EngineLoad(redis_real, seed=5)
        await load.setup()
        await load.run(100)
        t0 = time.monotonic()
        while time.monotonic() - t0 < 10:  # fails without the probe: refresh_s is 60
            if await rows(db_url, "SELECT market, trade_id FROM trades ORDER BY trade_id") == (
                load.trades
            ):
                break
            await asyncio.sleep(0.05)
        assert load.trades
        assert await rows(db_url, "SELECT market, trade_id FROM trades ORDER BY trade_id") == (
            load.trades
        )
    finally:
        stop.set()
        await task
        await drain.close()
