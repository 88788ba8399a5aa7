"""The batching Redis client: same replies and errors as plain redis-py, fewer trips."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from redis.exceptions import ResponseError

from api.redisbatch import BatchingRedis, batching


@pytest.fixture
async def client(redis_real: Any) -> Any:
    wrapped = batching(redis_real)
    assert isinstance(wrapped, BatchingRedis)
    return wrapped


async def test_concurrent_commands_share_one_round_trip(client: BatchingRedis) -> None:
    results = await asyncio.gather(
        client.set("a", 1), client.incr("n"), client.hset("h", mapping={"x": 1, "y": 2}),
        client.hgetall("h"), client.get("missing"), client.config_get("maxmemory"),
    )  # fmt: skip
    assert results[:5] == [True, 1, 2, {b"x": b"1", b"y": b"2"}, None]
    assert "maxmemory" in results[5]
    assert client.batches == 1 and client.commands == 6


async def test_errors_stay_with_their_command(client: BatchingRedis) -> None:
    await client.set("s", "text")
    ok, bad = await asyncio.gather(client.get("s"), client.incr("s"), return_exceptions=True)
    assert ok == b"text" and isinstance(bad, ResponseError)
    with pytest.raises(ResponseError):
        await client.fcall("no_such_function", 0)


async def test_pipelines_join_the_batch_and_keep_their_order(client: BatchingRedis) -> None:
    pipe = client.pipeline(transaction=False)
    pipe.rpush("l", "a").rpush("l", "b").lrange("l", 0, -1).incr("l")
    replies = await pipe.execute(raise_on_error=False)
    assert replies[:3] == [1, 2, [b"a", b"b"]] and isinstance(replies[3], ResponseError)
    with pytest.raises(ResponseError):
        pipe.incr("l")
        await pipe.execute()
    async with client.pipeline(transaction=True) as tx:  # a real MULTI/EXEC
        tx.set("t", 1).incr("t")
        assert await tx.execute() == [True, 2]


async def test_blocking_reads_bypass_the_batch(client: BatchingRedis) -> None:
    reader = asyncio.ensure_future(client.xread({"st": "$"}, block=2000))
    await asyncio.sleep(0.05)
    assert await client.xadd("st", {"f": "1"})  # not stuck behind the blocking read
    assert (await reader)[0][0] == b"st"
