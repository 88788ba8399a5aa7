"""Drain fault handling: poison entries, dead consumers, trimming."""

from __future__ import annotations

import orjson
import psycopg
import pytest
from prometheus_client import REGISTRY

from ops.bench.drain import Synthetic
from workers import streams
from workers.drain import Drain, DrainConfig


def cfg(**kw) -> DrainConfig:
    base = dict(claim_idle_ms=100, maintain_s=0.02, block_ms=20, max_failures=3)
    base.update(kw)
    return DrainConfig(**base)


async def count(url: str, sql: str) -> int:
    async with await psycopg.AsyncConnection.connect(url) as conn:
        row = await (await conn.execute(sql)).fetchone()
        return int(row[0]) if row else 0


def dead_letters_counted() -> float:
    return REGISTRY.get_sample_value("hftx_drain_dead_letters_total") or 0.0


async def feed(redis, syn: Synthetic, pairs: int) -> None:
    await redis.sadd("{g}:markets", syn.market)
    for _ in range(pairs):
        for fields in syn.pair(1_700_000_000_000):
            await redis.xadd(syn.stream, fields)


@pytest.mark.parametrize("poison", ["bad-json", "rejected-by-db"])
async def test_poison_entry_is_parked_and_the_rest_persisted(redis_real, db_url, poison):
    syn = Synthetic("PSN-USD")
    await feed(redis_real, syn, 20)
    if poison == "bad-json":
        bad = {"f": syn.seq + 1, "l": syn.seq + 1, "e": "[{not json"}
    else:  # converts fine, but violates trades.size > 0
        ev = {
            "e": "trade", "seq": syn.seq + 1, "ts": 1, "tid": 999, "price": 5, "size": 0,
            "quote": 0, "side": "buy", "maker": "a", "taker": "b", "mu": "u", "tu": "v",
            "mfee": 0, "tfee": 0,
        }  # fmt: skip
        bad = {"f": syn.seq + 1, "l": syn.seq + 1, "e": orjson.dumps([ev])}
    bad_id = (await redis_real.xadd(syn.stream, bad)).decode()
    syn.seq += 1
    await feed(redis_real, syn, 20)
    before = dead_letters_counted()
    drain = Drain(redis_real, db_url, cfg(count=7))
    await drain.catch_up(timeout_s=30)
    await drain.close()
    assert await count(db_url, "SELECT count(*) FROM trades") == 40
    assert await count(db_url, "SELECT count(*) FROM market_events") == 80
    dead = await redis_real.xrange(streams.dead_letter_key(syn.stream))
    assert len(dead) == 1 and dead[0][1][b"_id"].decode() == bad_id
    assert dead[0][1][b"e"] == (bad["e"] if isinstance(bad["e"], bytes) else bad["e"].encode())
    assert b"_reason" in dead[0][1]
    assert dead_letters_counted() == before + 1
    assert drain.parked == 1
    g = next(g for g in await streams.groups(redis_real, syn.stream) if g.name == "drain")
    assert g.pending == 0 and g.lag == 0
    assert await redis_real.hlen(streams.failures_key(syn.stream)) == 0


async def test_entries_of_a_dead_consumer_are_claimed(redis_real, db_url):
    syn = Synthetic("CLM-USD")
    await feed(redis_real, syn, 30)
    await streams.ensure_group(redis_real, syn.stream, "drain")
    # a consumer reads half of the entries and dies before writing them
    taken = await redis_real.xreadgroup("drain", "dead-one", {syn.stream: ">"}, count=30)
    assert len(taken[0][1]) == 30
    drain = Drain(redis_real, db_url, cfg())
    await drain.catch_up(timeout_s=30)
    await drain.close()
    assert await count(db_url, "SELECT count(*) FROM trades") == 30
    pending = await redis_real.xpending(syn.stream, "drain")
    assert pending["pending"] == 0


async def test_trim_keeps_everything_not_acknowledged_by_every_group(redis_real, db_url):
    syn = Synthetic("TRM-USD")
    await feed(redis_real, syn, 10)  # 20 entries
    await streams.ensure_group(redis_real, syn.stream, "drain")
    await streams.ensure_group(redis_real, syn.stream, "settler")
    drain = Drain(
        redis_real,
        db_url,
        cfg(trim_keep_ms=0, trim_require=("drain", "settler"), trim_positions=()),
    )
    await drain.catch_up(timeout_s=30)
    # drain acked all 20; the settler group has read 8 and acknowledged 5
    got = await redis_real.xreadgroup("settler", "s1", {syn.stream: ">"}, count=8)
    ids = [i for i, _ in got[0][1]]
    await redis_real.xack(syn.stream, "settler", *ids[:5])
    # the drain is stopped; more entries arrive that nobody has read
    await drain.close()
    await feed(redis_real, syn, 5)  # 10 more
    removed = await streams.trim(redis_real, syn.stream, ("drain", "settler"), keep_ms=0)
    assert removed == 5  # only what both groups acknowledged
    left = [i for i, _ in await redis_real.xrange(syn.stream)]
    assert left[0] == ids[5] and len(left) == 25
    # without the settler group nothing is trimmed at all
    assert await streams.trim(redis_real, syn.stream, ("drain", "nobody"), keep_ms=0) == 0
    # the drain resumes: the 10 unread entries land, nothing is lost
    again = Drain(
        redis_real,
        db_url,
        cfg(trim_keep_ms=0, trim_require=("drain", "settler"), trim_positions=()),
    )
    await again.catch_up(timeout_s=30)
    await again.close()
    assert await count(db_url, "SELECT count(*) FROM trades") == 15
    # a group-less reader's position (the settler's {m:X}:stl) bounds the trim as well
    await redis_real.xack(syn.stream, "settler", *ids[5:8])
    assert await streams.trim(redis_real, syn.stream, ("drain",), 0, (":stl",)) == 0  # unset
    await redis_real.set("{m:TRM-USD}:stl", ids[6])
    assert await streams.trim(redis_real, syn.stream, ("drain",), 0, (":stl",)) == 1
    assert (await redis_real.xrange(syn.stream, count=1))[0][0] == ids[6]
    # retention: entries younger than keep_ms stay even when acknowledged
    assert await streams.trim(redis_real, syn.stream, ("drain", "settler"), keep_ms=60_000) == 0


def test_safe_trim_id_is_the_minimum_over_groups():
    g = streams.GroupInfo
    infos = [g("drain", 0, "100-5", 0), g("settler", 2, "120-0", 0)]
    assert streams.safe_trim_id(infos, {"settler": "90-1"}, ("drain",), "500-0") == "90-1"
    assert streams.safe_trim_id(infos, {}, ("drain",), "500-0") == "100-5"
    assert streams.safe_trim_id(infos, {}, ("drain",), "50-0") == "50-0"
    assert streams.safe_trim_id(infos, {}, ("drain", "x"), "500-0") is None
    assert streams.safe_trim_id([], {}, (), "500-0") is None
