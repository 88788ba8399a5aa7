"""Publishing private pushes, pipelined where the client allows it."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any


def is_cluster(redis: Any) -> bool:
    return hasattr(redis, "get_primaries")


async def publish_many(redis: Any, messages: Iterable[tuple[str, str | bytes]]) -> None:
    """PUBLISH each ``(channel, message)``; one round trip on a single node.

    A cluster pipeline refuses PUBLISH, so on a cluster they go side by side.
    """
    messages = list(messages)
    if not messages:
        return
    if is_cluster(redis):
        await asyncio.gather(*(redis.publish(c, m) for c, m in messages))
        return
    pipe = redis.pipeline(transaction=False)
    for channel, message in messages:
        pipe.publish(channel, message)
    await pipe.execute()
