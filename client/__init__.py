"""hftx Python client: library, CLI (``python -m client``) and example bots.

Built only on the public wire contract (PROTOCOL.md). Exports are loaded lazily so
that ``from client.checksum import checksum`` (reused by the server) loads only zlib.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from client.amounts import Grid
    from client.book import BookStatus, LocalBook
    from client.errors import HftxError
    from client.exchange import HftxClient
    from client.subscriptions import BookSubscription, Subscription

_EXPORTS = {
    "BookStatus": "client.book",
    "BookSubscription": "client.subscriptions",
    "Grid": "client.amounts",
    "HftxClient": "client.exchange",
    "HftxError": "client.errors",
    "LocalBook": "client.book",
    "Subscription": "client.subscriptions",
}

__all__ = [
    "BookStatus",
    "BookSubscription",
    "Grid",
    "HftxClient",
    "HftxError",
    "LocalBook",
    "Subscription",
]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'client' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
