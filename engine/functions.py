"""Build, version and load the Redis Functions library from ``lua/*.lua``.

All ``lua/*.lua`` files are concatenated (sorted by name) into one library named
``hftx``. The version is a hash of the source, exposed by the ``hftx_version``
function, so a node can tell whether the loaded library is the one it ships with.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path
from typing import Any

LUA_DIR = Path(__file__).resolve().parent.parent / "lua"
LIBRARY_NAME = "hftx"


@lru_cache(maxsize=1)
def library_source() -> tuple[str, str]:
    """Return ``(version, source)`` of the function library."""
    parts = [p.read_text() for p in sorted(LUA_DIR.glob("*.lua"))]
    body = "\n".join(parts)
    version = hashlib.sha256(body.encode()).hexdigest()[:16]
    header = f"#!lua name={LIBRARY_NAME}\n"
    footer = (
        "\nredis.register_function{function_name='hftx_version', "
        f"callback=function() return '{version}' end, flags={{'no-writes'}}}}\n"
    )
    return version, header + body + footer


async def loaded_version(redis: Any) -> str | None:
    """The version of the library loaded in ``redis``, or None."""
    try:
        value = await redis.fcall_ro("hftx_version", 0)
    except Exception as exc:
        if "not found" in str(exc).lower() or "no such" in str(exc).lower():
            return None
        raise
    return value.decode() if isinstance(value, bytes) else str(value)


async def ensure_loaded(redis: Any, *, force: bool = False) -> str:
    """Load the library if it is missing or of another version; return its version.

    On a Redis Cluster the library is loaded on every primary.
    """
    version, source = library_source()
    nodes = _primaries(redis)
    for node in nodes:
        if force or await loaded_version(node) != version:
            await node.function_load(source, replace=True)
    return version


def _primaries(redis: Any) -> list[Any]:
    """Per-node clients for a cluster client, else the client itself."""
    get_primaries = getattr(redis, "get_primaries", None)
    if get_primaries is None:
        return [redis]
    return [_NodeClient(redis, node) for node in get_primaries()]


class _NodeClient:
    """The two calls ``ensure_loaded`` needs, sent to one node of a cluster client.

    (``redis.asyncio.cluster.RedisCluster`` has no per-node client object: commands
    are routed to a node with ``target_nodes``.)
    """

    def __init__(self, cluster: Any, node: Any) -> None:
        self._cluster = cluster
        self._node = node

    async def fcall_ro(self, name: str, numkeys: int) -> Any:
        return await self._cluster.execute_command(
            "FCALL_RO", name, numkeys, target_nodes=self._node
        )

    async def function_load(self, source: str, replace: bool = False) -> Any:
        args = ["FUNCTION LOAD", *(["REPLACE"] if replace else []), source]
        return await self._cluster.execute_command(*args, target_nodes=self._node)
