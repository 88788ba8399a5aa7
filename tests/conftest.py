"""Shared fixtures: real Valkey / Valkey cluster / PostgreSQL servers and Redis clients.

- ``valkey_url`` (session): a standalone Valkey, no persistence.
- ``valkey_cluster_urls`` (session, started only if some test asks for it): the URLs
  of a 3-primary Valkey cluster.
- ``pg_url`` (session): a throwaway PostgreSQL, ``postgresql://...`` URL.
- ``redis``: an async ``redis.asyncio`` client with the ``hftx`` function library
  loaded and an empty keyspace, once per backend: ``fake`` (fakeredis) and
  ``real`` (the session Valkey). Set ``HFTX_TEST_BACKENDS=fake,real,cluster`` to
  also run every such test against the 3-node cluster.
- ``redis_real``: the ``real`` backend only. ``redis_cluster``: a cluster client.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator

import fakeredis
import pytest
import redis.asyncio as aredis
from redis.asyncio.cluster import RedisCluster

from engine import functions
from tests import servers

BACKENDS = [
    b.strip() for b in os.environ.get("HFTX_TEST_BACKENDS", "fake,real").split(",") if b.strip()
]


@pytest.fixture(scope="session")
def valkey_url() -> Iterator[str]:
    with servers.valkey_server() as url:
        yield url


@pytest.fixture(scope="session")
def valkey_cluster_urls() -> Iterator[list[str]]:
    with servers.valkey_cluster(3) as urls:
        yield urls


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    with servers.postgres_server() as url:
        yield url


@pytest.fixture
def db_url(pg_url: str, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh, migrated database on the session PostgreSQL, dropped afterwards."""
    from ops.migrate import create_database, drop_database, migrate

    module = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_")
    name = f"t_{module[:20]}_{uuid.uuid4().hex[:10]}"
    url = create_database(pg_url, name)
    migrate(url)
    yield url
    drop_database(pg_url, name)


async def _real_client(url: str) -> aredis.Redis:
    client = aredis.Redis.from_url(url, decode_responses=False)
    await client.flushall()
    await functions.ensure_loaded(client)
    return client


async def _cluster_client(urls: list[str]) -> RedisCluster:
    client = RedisCluster.from_url(urls[0], decode_responses=False)
    await client.initialize()
    await client.flushall(target_nodes=RedisCluster.PRIMARIES)
    await functions.ensure_loaded(client)  # on every primary
    return client


@pytest.fixture(params=BACKENDS)
async def redis(request: pytest.FixtureRequest) -> AsyncIterator[aredis.Redis]:
    """A clean async client with the Lua library loaded, per backend."""
    client: aredis.Redis | RedisCluster
    if request.param == "fake":
        client = fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer(), decode_responses=False)
        await functions.ensure_loaded(client)
    elif request.param == "real":
        client = await _real_client(request.getfixturevalue("valkey_url"))
    elif request.param == "cluster":
        client = await _cluster_client(request.getfixturevalue("valkey_cluster_urls"))
    else:
        raise ValueError(f"unknown backend in HFTX_TEST_BACKENDS: {request.param!r}")
    try:
        yield client  # type: ignore[misc]
    finally:
        await client.aclose()


@pytest.fixture
async def redis_real(valkey_url: str) -> AsyncIterator[aredis.Redis]:
    """A clean async client of the session Valkey with the Lua library loaded."""
    client = await _real_client(valkey_url)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
async def redis_cluster(valkey_cluster_urls: list[str]) -> AsyncIterator[RedisCluster]:
    """A clean async cluster client of the session cluster with the Lua library loaded."""
    client = await _cluster_client(valkey_cluster_urls)
    try:
        yield client
    finally:
        await client.aclose()
