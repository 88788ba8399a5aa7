"""Shared checks of the drain tests: what PostgreSQL holds against what the engine did."""

from __future__ import annotations

from typing import Any

import psycopg

from workers import candles


async def rows(url: str, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    async with await psycopg.AsyncConnection.connect(url) as conn:
        return await (await conn.execute(sql, args)).fetchall()


async def assert_orders_and_candles_match(redis: Any, url: str, market: str) -> None:
    """Final order rows equal the engine's order records; candles equal the stored trades'."""
    for oid, status, filled, cost, amount in await rows(
        url, "SELECT id, status, filled, cost, amount FROM orders WHERE status <> 'NEW'"
    ):
        rec = await redis.hgetall(f"{{m:{market}}}:o:{oid}")
        assert rec[b"status"].decode() == status, oid
        assert (int(rec[b"filled"]), int(rec[b"cost"]), int(rec[b"amount"])) == (
            filled,
            cost,
            amount,
        )
    trades = await rows(url, "SELECT market, trade_id, price, size, quote, ts FROM trades")
    want = {
        c.key: (c.open, c.high, c.low, c.close, c.volume, c.trades)
        for c in candles.aggregate(trades)
    }
    have = {
        (r[0], r[1], r[2]): (r[3], r[4], r[5], r[6], int(r[7]), r[8])
        for r in await rows(
            url,
            "SELECT market, interval, start_ts, open, high, low, close, volume, trades"
            " FROM candles",
        )
    }
    assert have == want
