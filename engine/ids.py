"""Globally unique, time-ordered order ids (63-bit snowflakes as decimal strings).

41 bits of milliseconds since 2024-01-01, 10 bits of node id, 12 bits of sequence.
Ids are unique while no two live processes share a node id: ``HFTX_NODE_ID`` sets it;
without it a process takes the next one from a counter in Redis
(:func:`claim_node_id`), so it meets a live process's id only after 1,023 later
process starts.
"""

from __future__ import annotations

import os
import random
import threading
import time
from typing import Any

EPOCH_MS = 1_704_067_200_000
NODE_COUNTER_KEY = "{g}:nodeids"  # node ids handed out to processes without HFTX_NODE_ID
_NODE_BITS = 10
_SEQ_BITS = 12


class IdGenerator:
    def __init__(self, node_id: int | None = None) -> None:
        if node_id is None:
            env = os.environ.get("HFTX_NODE_ID")
            node_id = int(env) if env else random.getrandbits(_NODE_BITS)
        self.node_id = node_id % (1 << _NODE_BITS)
        self._last_ms = 0
        self._seq = 0
        self._lock = threading.Lock()

    def next(self) -> str:
        with self._lock:
            now = time.time_ns() // 1_000_000 - EPOCH_MS
            if now <= self._last_ms:
                self._seq = (self._seq + 1) & ((1 << _SEQ_BITS) - 1)
                if self._seq == 0:
                    self._last_ms += 1  # borrow from the next millisecond
                now = self._last_ms
            else:
                self._seq = 0
                self._last_ms = now
            value = (now << (_NODE_BITS + _SEQ_BITS)) | (self.node_id << _SEQ_BITS) | self._seq
            return str(value)


_default = IdGenerator()


def new_order_id() -> str:
    return _default.next()


def node_id() -> int:
    """The node id in the ids this process generates."""
    return _default.node_id


def use_node_id(node: int) -> None:
    """Generate ids with node id ``node`` from now on (a web node applies its settings'
    ``HFTX_NODE_ID``, which may come from a ``.env`` file, not only the environment)."""
    if not 0 <= node < 1 << _NODE_BITS:
        raise ValueError(f"node id must be 0..{(1 << _NODE_BITS) - 1}")
    _default.node_id = node


async def claim_node_id(redis: Any) -> int:
    """Generate ids with the next node id of the Redis counter from now on (for a
    process started without ``HFTX_NODE_ID``); returns it."""
    taken = int(await redis.incr(NODE_COUNTER_KEY))
    node = (taken - 1) % (1 << _NODE_BITS)
    use_node_id(node)
    return node
