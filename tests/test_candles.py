"""Candles: pure aggregation against hand-computed values, and the SQL merge."""

from __future__ import annotations

import random

import psycopg

from workers import candles
from workers.candles import Candle, aggregate

M = 60_000
T0 = 1_700_000_100_000  # 2023-11-14T22:15:00Z: a 5m boundary, 15 min into the hour

# (market, trade id, price, size, quote, ts)
TRADES = [
    ("BTC-USD", 1, 100, 5, 500, T0 + 1_000),
    ("BTC-USD", 2, 104, 1, 104, T0 + 2_000),
    ("BTC-USD", 3, 98, 2, 196, T0 + 59_999),
    ("BTC-USD", 4, 101, 3, 303, T0 + 60_000),
    ("BTC-USD", 5, 99, 1, 99, T0 + 61_000),
    ("ETH-USD", 1, 7, 10, 70, T0 + 5_000),
]


def by_key(cs: list[Candle]) -> dict[tuple[str, str, int], tuple[int, ...]]:
    return {c.key: (c.open, c.high, c.low, c.close, c.volume, c.quote_volume, c.trades) for c in cs}


def test_buckets_are_utc_aligned():
    assert T0 % M == 0
    assert candles.bucket_start(T0 + 59_999, M) == T0
    assert candles.bucket_start(T0 + 60_000, M) == T0 + M
    day = candles.INTERVALS["1d"]
    assert candles.bucket_start(T0, day) == 1_699_920_000_000  # 2023-11-14 00:00Z
    assert candles.bucket_start(T0 + 61_000, 300_000) == T0


def test_hand_computed_1m_5m_1d():
    got = by_key(aggregate(TRADES))
    # first minute of BTC: trades 1..3 -> open 100, high 104, low 98, close 98
    assert got[("BTC-USD", "1m", T0)] == (100, 104, 98, 98, 8, 800, 3)
    assert got[("BTC-USD", "1m", T0 + M)] == (101, 101, 99, 99, 4, 402, 2)
    # 5m, 1h and 1d buckets hold all five BTC trades: close = trade 5's price
    assert got[("BTC-USD", "5m", T0)] == (100, 104, 98, 99, 12, 1202, 5)
    assert got[("BTC-USD", "1h", T0 - 900_000)] == (100, 104, 98, 99, 12, 1202, 5)
    assert got[("BTC-USD", "1d", 1_699_920_000_000)] == (100, 104, 98, 99, 12, 1202, 5)
    assert got[("ETH-USD", "1m", T0)] == (7, 7, 7, 7, 10, 70, 1)
    assert len(got) == 2 + 1 + 1 + 1 + 4  # BTC 1m x2, 5m, 1h, 1d; ETH x4


def test_open_close_follow_trade_ids_not_arrival_order():
    shuffled = list(reversed(TRADES))
    assert by_key(aggregate(shuffled)) == by_key(aggregate(TRADES))


def test_merge_of_any_split_equals_the_whole():
    rng = random.Random(7)
    trades = [
        ("X-Y", tid, rng.randint(90, 110), rng.randint(1, 9), 0, T0 + rng.randint(0, 10 * M))
        for tid in range(1, 200)
    ]
    whole = by_key(aggregate(trades))
    for _ in range(20):
        rng.shuffle(trades)
        cut = rng.randint(0, len(trades))
        a = {c.key: c for c in aggregate(trades[:cut])}
        for c in aggregate(trades[cut:]):
            a[c.key] = a[c.key].merge(c) if c.key in a else c
        assert by_key(list(a.values())) == whole


async def test_sql_merge_of_batches_in_any_order(db_url):
    batches = [TRADES[3:], TRADES[:2], TRADES[2:3]]  # later trades first
    async with await psycopg.AsyncConnection.connect(db_url) as conn:
        for batch in batches:
            async with conn.transaction():
                await candles.upsert(conn, aggregate(batch))
        rows = await (
            await conn.execute(
                "SELECT market, interval, start_ts, open, high, low, close, volume,"
                " quote_volume, trades FROM candles"
            )
        ).fetchall()
    got = {(r[0], r[1], r[2]): tuple(int(x) for x in r[3:]) for r in rows}
    assert got == by_key(aggregate(TRADES))


async def test_sql_volume_beyond_int64(db_url):
    big = 2**53 - 1
    trades = [("BTC-USD", i, 10, big, big, T0 + i) for i in range(1, 2001)]
    async with await psycopg.AsyncConnection.connect(db_url) as conn:
        for i in range(0, 2000, 500):
            async with conn.transaction():
                await candles.upsert(conn, aggregate(trades[i : i + 500]))
        row = await (
            await conn.execute(
                "SELECT volume, trades FROM candles WHERE interval = '1d' AND market = 'BTC-USD'"
            )
        ).fetchone()
    assert row is not None
    assert int(row[0]) == 2000 * big > 2**63 and row[1] == 2000
