"""Publishing private pushes, pipelined where the client allows it."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any


def is_cluster(redis: Any) -> bool:
    return hasattr(redis, "get_primaries")


async def publish(redis: Any, channel: str, message: str | bytes) -> int:
    """PUBLISH on a single node or a cluster (classic pub/sub reaches every node).

    redis-py's asyncio cluster client has no ``publish`` method and PUBLISH has no
    key to route by, so on a cluster it goes to any one node.
    """
    if is_cluster(redis):
        return int(
            await redis.execute_command(
                "PUBLISH", channel, message, target_nodes=redis.get_random_node()
            )
        )
    return int(await redis.publish(channel, message))


async def publish_many(redis: Any, messages: Iterable[tuple[str, str | bytes]]) -> None:
    """PUBLISH each ``(channel, message)``; one round trip on a single node.

    A cluster pipeline refuses PUBLISH, so on a cluster they go side by side.
    """
    messages = list(messages)
    if not messages:
        return
    if is_cluster(redis):
        await asyncio.gather(*(publish(redis, c, m) for c, m in messages))
        return
    pipe = redis.pipeline(transaction=False)
    for channel, message in messages:
        pipe.publish(channel, message)
    await pipe.execute()
