"""JSON encoding of wire messages.

Decoding turns any JSON float into :class:`decimal.Decimal` so that a number is never
silently rounded; PROTOCOL.md sends prices and sizes as strings anyway. Encoding
refuses floats (and Decimals): amounts go out as decimal strings.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

Json = dict[str, Any]
"""A decoded JSON object: a response result or a push."""


def loads(data: str | bytes) -> Any:
    return json.loads(data, parse_float=Decimal)


def dumps(value: Any) -> str:
    """Compact JSON of ``value``; raises TypeError if it contains a float."""
    _check(value)
    return json.dumps(value, separators=(",", ":"))


def _check(value: Any) -> None:
    if isinstance(value, float | Decimal):
        raise TypeError(f"{value!r}: send amounts as decimal strings, not numbers")
    if isinstance(value, dict):
        for item in value.values():
            _check(item)
    elif isinstance(value, list | tuple):
        for item in value:
            _check(item)
