"""The test servers and fixtures work, and servers are gone after their block."""

from __future__ import annotations

import socket
from urllib.parse import urlparse

import psycopg
import pytest
import redis.asyncio as aredis
from redis.asyncio.cluster import RedisCluster

from engine import functions
from tests import servers


def _accepts_connections(url: str) -> bool:
    u = urlparse(url)
    assert u.hostname and u.port
    try:
        socket.create_connection((u.hostname, u.port), timeout=0.5).close()
    except OSError:
        return False
    return True


async def test_redis_fixture_has_the_function_library(redis: aredis.Redis) -> None:
    assert await redis.ping() is True
    libraries = await redis.function_list()
    names = [dict(zip(lib[::2], lib[1::2], strict=True))[b"library_name"] for lib in libraries]
    assert names == [b"hftx"]
    assert await functions.loaded_version(redis) == functions.library_source()[0]
    assert await redis.dbsize() == 0


async def test_redis_real_is_flushed_between_tests(redis_real: aredis.Redis) -> None:
    assert await redis_real.dbsize() == 0
    await redis_real.set(b"leftover", b"1")
    config = await redis_real.config_get("appendonly")
    assert {str(k): str(v) for k, v in config.items()} == {"appendonly": "no"}


async def test_redis_real_is_flushed_between_tests_again(redis_real: aredis.Redis) -> None:
    assert await redis_real.get(b"leftover") is None


async def test_pg_url_answers(pg_url: str) -> None:
    assert pg_url.startswith("postgresql://") and "@127.0.0.1:" in pg_url
    async with await psycopg.AsyncConnection.connect(pg_url) as conn:
        cur = await conn.execute("SELECT 1, current_setting('fsync')")
        assert await cur.fetchone() == (1, "off")


@pytest.mark.cluster
async def test_cluster_has_three_primaries_and_spreads_the_shards(
    redis_cluster: RedisCluster,
) -> None:
    primaries = redis_cluster.get_primaries()
    assert len(primaries) == 3
    # slots 11628 and 16340: different shards (both on the third primary with 3
    # equal slot ranges), so a function touching both would be refused
    market, account = "{m:BTC-USD}:cfg", "{u:1}:bal"
    slots = [await redis_cluster.execute_command("CLUSTER KEYSLOT", k) for k in (market, account)]
    assert slots == [redis_cluster.keyslot(market), redis_cluster.keyslot(account)]
    assert slots == [11628, 16340]
    # one market, another market and an account (slots 11628, 6359, 4023): three nodes
    keys = [market, "{m:ETH-USD}:cfg", "{u:2}:bal"]
    owners = [redis_cluster.get_node_from_key(k) for k in keys]
    assert len({node.name for node in owners if node is not None}) == 3
    # the library is loaded on every primary
    version = functions.library_source()[0]
    for node in primaries:
        async with aredis.Redis(host=node.host, port=int(node.port)) as direct:
            assert await functions.loaded_version(direct) == version
    # and a function call is routed to the shard of its keys
    assert await redis_cluster.fcall_ro("hftx_version", 1, market) == version.encode()


def test_valkey_server_is_stopped_even_on_failure() -> None:
    with pytest.raises(RuntimeError, match="boom"), servers.valkey_server() as url:
        assert _accepts_connections(url)
        raise RuntimeError("boom")
    assert not _accepts_connections(url)


def test_postgres_server_is_stopped_even_on_failure() -> None:
    with pytest.raises(RuntimeError, match="boom"), servers.postgres_server() as url:
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT 2").fetchone() == (2,)
        raise RuntimeError("boom")
    assert not _accepts_connections(url)
