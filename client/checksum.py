"""Kraken-style CRC32 checksum of the top of an L2 book (PROTOCOL.md, "Checksum").

Pure and dependency-free (only :mod:`zlib`) so the server can import it too.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from itertools import islice

CHECKSUM_DEPTH = 10
"""Number of levels per side covered by the checksum."""

Level = tuple[str, str]
"""One book level: ``(price, size)`` as the exact decimal strings sent on the wire."""


def level_token(value: str) -> str:
    """Format one price or size: drop the ``.`` then strip leading zeros."""
    return value.replace(".", "").lstrip("0")


def checksum_string(asks: Iterable[Level], bids: Iterable[Level]) -> str:
    """The string the checksum is taken of.

    ``asks`` must be ascending and ``bids`` descending (best first); only the first
    :data:`CHECKSUM_DEPTH` levels of each are used.
    """
    parts: list[str] = []
    for side in (asks, bids):
        for price, size in islice(side, CHECKSUM_DEPTH):
            parts.append(level_token(price))
            parts.append(level_token(size))
    return "".join(parts)


def checksum(asks: Iterable[Level], bids: Iterable[Level]) -> int:
    """CRC32 (unsigned 32-bit) of the top 10 asks then the top 10 bids, best first."""
    return zlib.crc32(checksum_string(asks, bids).encode("ascii")) & 0xFFFFFFFF
