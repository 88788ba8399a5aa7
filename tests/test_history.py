"""History read queries against a real PostgreSQL filled by the drain."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import psycopg
import pytest

from api import history
from engine import market as M
from engine import registry
from engine.types import OrderRequest
from ops.bench.drain import LOAD_MARKET, EngineLoad
from workers.drain import Drain, DrainConfig

MKT = LOAD_MARKET
LOT, TICK = MKT.lot, MKT.tick


@pytest.fixture
async def conn(db_url):
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as c:
        yield c


async def every_page(read: Callable[..., Awaitable[Any]], *args: Any, limit: int) -> list[Any]:
    """All items of a paged ``api.history`` query, following ``next_cursor``."""
    items: list[Any] = []
    cursor = None
    while True:
        page = await read(*args, limit=limit, cursor=cursor)
        items += page.items
        if page.next_cursor is None:
            return items
        cursor = page.next_cursor


async def count(conn: Any, sql: str, *args: Any) -> int:
    return int((await (await conn.execute(sql, args)).fetchone())[0])


async def drain_all(redis, db_url: str) -> None:
    d = Drain(redis, db_url, DrainConfig(claim_idle_ms=100, block_ms=10, trim_require=("x",)))
    await d.catch_up()
    await d.close()


async def scenario(redis) -> None:
    """alice rests a sell, bob takes part of it, carol cancels a buy."""
    await registry.create_asset(redis, "DRN", 8)
    await registry.create_asset(redis, "USD", 8)
    await registry.create_market(redis, MKT, 1_000)
    limit = OrderRequest
    await M.place(
        redis, "a1", "alice", limit(MKT.id, "sell", "limit", 10 * LOT, 100 * TICK), 60_000
    )
    await M.place(redis, "b1", "bob", limit(MKT.id, "buy", "limit", 4 * LOT, 101 * TICK), 61_000)
    await M.place(redis, "c1", "carol", limit(MKT.id, "buy", "limit", 2 * LOT, 90 * TICK), 62_000)
    await M.cancel(redis, MKT.id, "c1", "carol", 63_000)
    await M.place(redis, "b2", "bob", limit(MKT.id, "buy", "limit", 1 * LOT, 100 * TICK), 125_000)


async def test_orders_fills_trades_candles_of_a_hand_made_scenario(redis_real, db_url, conn):
    await scenario(redis_real)
    await drain_all(redis_real, db_url)

    bob = await history.orders(conn, "bob")
    assert [o.id for o in bob.items] == ["b2", "b1"] and bob.next_cursor is None
    b1 = bob.items[1]
    assert (b1.status, b1.filled, b1.amount, b1.price) == ("FILLED", 4 * LOT, 4 * LOT, 101 * TICK)
    assert b1.cost == 100 * 4 * MKT.mult  # executed at the maker's price
    alice = await history.orders(conn, "alice", status="open")
    assert [(o.id, o.status) for o in alice.items] == [("a1", "NEW")]  # live fills: Redis
    assert (await history.orders(conn, "alice", status="closed")).items == []
    carol = await history.orders(conn, "carol", status="CANCELED", market=MKT.id)
    assert [o.id for o in carol.items] == ["c1"]
    assert (await history.orders(conn, "carol", market="OTHER-USD")).items == []
    assert await history.order(conn, "bob", "b1") == b1
    assert await history.order(conn, "alice", "b1") is None  # not hers

    fills = await history.fills(conn, "alice")
    assert [(f.trade_id, f.side, f.liquidity, f.size, f.fee_asset) for f in fills.items] == [
        (2, "sell", "maker", 1 * LOT, "USD"),
        (1, "sell", "maker", 4 * LOT, "USD"),
    ]
    assert fills.items[1].fee == -(-(100 * 4 * MKT.mult) * MKT.maker_fee_bps // 10_000)
    bob_fills = (await history.fills(conn, "bob")).items
    assert [(f.order_id, f.side, f.liquidity, f.fee_asset) for f in bob_fills] == [
        ("b2", "buy", "taker", "DRN"),
        ("b1", "buy", "taker", "DRN"),
    ]
    assert bob_fills[1].fee == -(-4 * LOT * MKT.taker_fee_bps // 10_000)

    trades = await history.trades(conn, MKT.id)
    assert [(t.trade_id, t.price, t.taker_side) for t in trades] == [
        (2, 100 * TICK, "buy"),
        (1, 100 * TICK, "buy"),
    ]
    assert [t.trade_id for t in await history.trades(conn, MKT.id, before_trade_id=2)] == [1]

    one_m = await history.candles(conn, MKT.id, "1m")
    assert [(c.start, c.open, c.close, c.volume, c.trades) for c in one_m] == [
        (60_000, 100 * TICK, 100 * TICK, 4 * LOT, 1),
        (120_000, 100 * TICK, 100 * TICK, 1 * LOT, 1),
    ]
    assert [c.start for c in await history.candles(conn, MKT.id, "1m", limit=1)] == [120_000]
    assert [c.start for c in await history.candles(conn, MKT.id, "1m", end_ts=120_000)] == [60_000]
    starts = [c.start for c in await history.candles(conn, MKT.id, "1m", start_ts=0, limit=1)]
    assert starts == [60_000]  # from start: the first `limit`, oldest first
    starts = [c.start for c in await history.candles(conn, MKT.id, "1m", start_ts=60_001)]
    assert starts == [120_000]
    window = await history.candles(conn, MKT.id, "1m", start_ts=60_000, end_ts=120_000)
    assert [c.start for c in window] == [60_000]
    day = await history.candles(conn, MKT.id, "1d")
    assert [(c.volume, c.quote_volume, c.trades) for c in day] == [(5 * LOT, 100 * 5 * MKT.mult, 2)]
    with pytest.raises(ValueError):
        await history.candles(conn, MKT.id, "2m")
    with pytest.raises(ValueError):
        await history.orders(conn, "bob", status="maybe")
    with pytest.raises(ValueError):
        await history.orders(conn, "bob", limit=0)


async def test_paging_visits_everything_once_in_order(redis_real, db_url, conn):
    load = EngineLoad(redis_real, seed=5, users=3)
    await load.setup()
    await load.run(300)
    await drain_all(redis_real, db_url)
    for user in load.users:
        seen = await every_page(history.orders, conn, user, limit=7)
        keys = [(o.created_ts, o.id) for o in seen]
        assert keys == sorted(keys, reverse=True) and len(set(keys)) == len(keys)
        total = await count(conn, "SELECT count(*) FROM orders WHERE user_id = %s", user)
        assert len(seen) == total > 0

        fills = await every_page(history.fills, conn, user, limit=5)
        want = await count(
            conn, "SELECT count(*) FROM trades WHERE maker_user = %s", user
        ) + await count(conn, "SELECT count(*) FROM trades WHERE taker_user = %s", user)
        assert len(fills) == want
        keys = [(f.ts, f.market, f.trade_id, f.liquidity) for f in fills]
        assert len(set(keys)) == len(keys)
        assert [k[:3] for k in keys] == sorted((k[:3] for k in keys), reverse=True)


async def test_ledger_and_notifications(redis_real, db_url, conn):
    await redis_real.sadd("{g}:accounts", "u1")
    for i in range(5):
        ev = [{"e": "deposit", "ts": i, "id": f"d{i}", "asset": "USD", "amount": 100 + i}]
        await redis_real.xadd("{u:u1}:ev", {"e": orjson.dumps(ev)})
    fill = {
        "e": "fill", "ts": 9, "market": "BTC-USD", "id": "o1", "tid": 3, "liq": "maker",
        "out": "USD", "paid": 0, "in": "BTC", "got": 7, "fee": 1,
    }  # fmt: skip
    hold = {"e": "hold", "ts": 8, "id": "o1", "market": "BTC-USD", "asset": "USD", "amount": 50}
    await redis_real.xadd("{u:u1}:ev", {"e": orjson.dumps([hold, fill])})
    await drain_all(redis_real, db_url)
    everything = await every_page(history.ledger, conn, "u1", limit=2)
    assert [(e.kind, e.asset, e.leg) for e in everything[:3]] == [
        ("fill", "BTC", 1),
        ("fill", "USD", 0),
        ("hold", "USD", 0),
    ]
    assert len(everything) == 8
    assert everything[0].available == 6 and everything[0].trade_id == 3
    usd = (await history.ledger(conn, "u1", asset="USD", limit=100)).items
    assert sum(e.available for e in usd) == sum(100 + i for i in range(5)) - 50
    assert (await history.ledger(conn, "nobody")).items == []

    for i in range(3):
        await conn.execute(
            "INSERT INTO notifications (user_id, kind, message, ref, ts)"
            " VALUES (%s, %s, %s, %s, %s)",
            ("u1", "p2p", f"m{i}", None, i),
        )
    first = await history.notifications(conn, "u1", limit=2)
    assert [n.message for n in first.items] == ["m2", "m1"] and first.next_cursor
    rest = await history.notifications(conn, "u1", limit=2, cursor=first.next_cursor)
    assert [n.message for n in rest.items] == ["m0"] and rest.next_cursor is None


async def volumes(conn: Any, since: int, before: int) -> list[tuple[int, int]]:
    return [(m.start, m.volume) for m in await history.minutes_below(conn, MKT.id, since, before)]


async def test_minutes_below_split_the_candle_at_the_trade_id(redis_real, db_url, conn):
    await scenario(redis_real)  # trade 1 at 61 s (4 lots), trade 2 at 125 s (1 lot)
    buy = OrderRequest(MKT.id, "buy", "limit", 2 * LOT, 100 * TICK)
    await M.place(redis_real, "b3", "bob", buy, 126_000)  # trade 3 at 126 s (2 lots)
    await drain_all(redis_real, db_url)
    everything = await volumes(conn, 0, 10)
    assert sorted(everything) == [(60_000, 4 * LOT), (120_000, 3 * LOT)]
    # below id 3 the second minute's candle is split: only trade 2 of it
    assert sorted(await volumes(conn, 0, 3)) == [
        (60_000, 4 * LOT),
        (120_000, LOT),
    ]
    assert await volumes(conn, 0, 2) == [(60_000, 4 * LOT)]
    # the split minute's range is of its trades below the id (trade 2 alone), by id
    split = {m.start: m for m in await history.minutes_below(conn, MKT.id, 0, 3)}[120_000]
    assert (split.first_tid, split.open, split.high, split.low) == (
        2,
        100 * TICK,
        100 * TICK,
        100 * TICK,
    )
    assert await volumes(conn, 0, 1) == []
    # since 121 s: from the minute holding it, which starts at 120 000
    assert await volumes(conn, 121_000, 10) == [(120_000, 3 * LOT)]


async def test_minutes_below_count_each_trade_once_under_clock_skew(redis_real, db_url, conn):
    """Trade ids follow the engine's order, trade times the clock of the node that sent
    each order: with two nodes' clocks apart, a minute's candle holds trade ids that are
    not contiguous, so the split candle sums only its own minute's trades."""
    await registry.create_asset(redis_real, "DRN", 8)
    await registry.create_asset(redis_real, "USD", 8)
    await registry.create_market(redis_real, MKT, 1_000)
    sell = OrderRequest(MKT.id, "sell", "limit", 10 * LOT, 100 * TICK)
    await M.place(redis_real, "a1", "alice", sell, 60_000)
    for oid, lots, now in (("b1", 1, 125_000), ("b2", 2, 61_000), ("b3", 4, 126_000)):
        buy = OrderRequest(MKT.id, "buy", "limit", lots * LOT, 100 * TICK)
        await M.place(redis_real, oid, "bob", buy, now)  # trades 1, 2, 3 in that order
    await drain_all(redis_real, db_url)
    # minute 60 s: trade 2; minute 120 s: trades 1 and 3. Below id 3: 1 of the second
    assert sorted(await volumes(conn, 0, 3)) == [
        (60_000, 2 * LOT),
        (120_000, 1 * LOT),
    ]
    assert sorted(await volumes(conn, 0, 10)) == [
        (60_000, 2 * LOT),
        (120_000, 5 * LOT),
    ]
