"""The drain and the snapshot/restore on a 3-node Valkey cluster (one hash tag per
command: per-stream reads, per-shard dumps)."""

from __future__ import annotations

import psycopg
import pytest

from ops.bench.drain import EngineLoad, ExchangeLoad
from snapshots import snapshot as S
from snapshots.reconcile import reconcile
from snapshots.restore import canonical_dump, restore
from workers.drain import Drain, DrainConfig

pytestmark = pytest.mark.cluster


def drain(redis, db_url: str) -> Drain:
    return Drain(redis, db_url, DrainConfig(claim_idle_ms=100, block_ms=10, maintain_s=0.05))


async def test_drain_on_a_cluster(redis_cluster, db_url):
    load = EngineLoad(redis_cluster, seed=41)
    await load.setup()
    await load.run(300)
    d = drain(redis_cluster, db_url)
    await d.catch_up(timeout_s=60)
    await d.close()
    async with await psycopg.AsyncConnection.connect(db_url) as conn:
        stored = await (
            await conn.execute("SELECT market, trade_id FROM trades ORDER BY trade_id")
        ).fetchall()
    assert stored == load.trades and len(stored) > 20


async def test_snapshot_restore_reconcile_on_a_cluster(redis_cluster, db_url, tmp_path):
    load = ExchangeLoad(redis_cluster, seed=42)
    await load.setup()
    await load.run(150)
    info = await S.snapshot_day(redis_cluster, db_url, tmp_path, now_ms=1_764_028_800_000)
    await load.run(150)
    await load.settle()
    d = drain(redis_cluster, db_url)
    await d.catch_up(timeout_s=60)
    await d.close()
    assert (await reconcile(redis_cluster, db_url)).ok
    live = await canonical_dump(redis_cluster)
    from redis.asyncio.cluster import RedisCluster

    await redis_cluster.flushall(target_nodes=RedisCluster.PRIMARIES)
    await restore(redis_cluster, db_url, S.load_file(tmp_path / info.path))
    assert await canonical_dump(redis_cluster) == live
