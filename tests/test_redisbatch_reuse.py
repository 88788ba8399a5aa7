"""The batching client keeps its connections between batches and notices closed ones."""

from __future__ import annotations

import asyncio
from typing import Any

from api.redisbatch import BatchingRedis, batching


async def test_batches_reuse_a_connection_and_survive_the_server_closing_it(
    redis_real: Any,
) -> None:
    client = batching(redis_real)
    assert isinstance(client, BatchingRedis)
    await client.set("k", "v")
    first = await client.client_id()
    assert await client.client_id() == first  # the same connection, batch after batch
    await redis_real.execute_command("CLIENT", "KILL", "ID", first)
    await asyncio.sleep(0.2)  # the event loop reads the server's close meanwhile
    assert await client.get("k") == b"v"  # on a fresh connection, nothing lost
    assert await client.client_id() != first
    replies = await asyncio.gather(*(client.incr("n") for _ in range(20)))
    assert sorted(replies) == list(range(1, 21))
