"""JSON in and out with orjson, with the limits of docs/protocol.md.

Parsing rejects NaN/Infinity and numbers that overflow a double (orjson does),
documents nested deeper than ``MAX_DEPTH`` and bodies larger than the caller's
limit. Floats are left in place: the schemas reject them for money fields.
A request naming a key twice in one object (``{"amount": "1", "amount": "2"}``) is
refused (:func:`duplicate_key`): orjson keeps the last, an exchange must not guess.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
from starlette.background import BackgroundTask
from starlette.responses import Response

from api.errors import ApiError

MAX_DEPTH = 8


def depth_of(value: Any) -> int:
    """Nesting depth of a parsed JSON value (scalars are depth 0), iteratively."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            level += 1
            stack.extend((v, level) for v in item.values())
        elif isinstance(item, list):
            level += 1
            stack.extend((v, level) for v in item)
        else:
            continue
        deepest = max(deepest, level)
        if deepest > MAX_DEPTH:
            break
    return deepest


def loads(data: bytes | str, max_depth: int = MAX_DEPTH) -> Any:
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise ApiError("INVALID_PARAM", "body is not valid JSON") from None
    if isinstance(value, dict | list) and depth_of(value) > max_depth:
        raise ApiError("INVALID_PARAM", f"JSON nested deeper than {max_depth} levels")
    return value


def loads_object(data: bytes | str) -> dict[str, Any]:
    value = loads(data)
    if not isinstance(value, dict):
        raise ApiError("INVALID_PARAM", "body must be a JSON object")
    refuse_duplicate_keys(data, value)
    return value


def _zero(_: str) -> int:
    return 0


def first_duplicate(data: bytes | str) -> tuple[str, bool] | None:
    """A key named twice in one object of the JSON text ``data`` (keys compared once
    unescaped: ``"a"`` and ``"\\u0061"`` are the same), and whether that object is the
    outermost one; None without duplicates. Exact but ~10x slower than orjson (the
    ``json`` module, values not built): only for texts that may hold one."""
    found: list[tuple[str, int]] = []
    objects = 0

    def pairs(items: list[tuple[str, Any]]) -> None:
        nonlocal objects
        objects += 1
        seen: set[str] = set()
        for key, _ in items:
            if key in seen:
                found.append((key, objects))
                return
            seen.add(key)

    try:  # after orjson accepted the text: nothing here can fail but a pathology
        json.loads(data, object_pairs_hook=pairs, parse_int=_zero, parse_float=_zero,
                   parse_constant=_zero)  # fmt: skip
    except (ValueError, RecursionError):
        return None
    if not found:
        return None
    key, at = next(((k, n) for k, n in found if n == objects), found[0])  # the outermost first
    return key, at == objects


def duplicate_key(data: bytes | str, value: Any) -> tuple[str, bool] | None:
    """:func:`first_duplicate` of ``data`` (whose parsed value is ``value``), cheaply:
    every key is followed by exactly one ``:`` outside strings, so a text with no more
    ``:`` than the members of ``value``'s objects names no key twice. ``value``'s
    members are counted in it and in the objects it holds (a request's envelope and
    ``params``): a text with deeper objects or a ``:`` inside a string (a
    ``client_order_id`` of ``a:b``) takes the exact path, every other request costs a
    ``count``. (The exact path would find a duplicate in deeper objects too.)"""
    members = 0
    if isinstance(value, dict):
        members = len(value)
        for v in value.values():
            if isinstance(v, dict):
                members += len(v)
    colons = data.count(b":") if isinstance(data, bytes) else data.count(":")
    if colons <= members:
        return None
    return first_duplicate(data)


def refuse_duplicate_keys(data: bytes | str, value: Any) -> None:
    found = duplicate_key(data, value)
    if found is not None:
        raise ApiError("INVALID_PARAM", f"duplicate key {found[0][:40]}")


dumps = orjson.dumps


class JSONResponse(Response):
    media_type = "application/json"

    def __init__(
        self,
        content: Any,
        status_code: int = 200,
        headers: dict[str, str] | None = None,
        background: BackgroundTask | None = None,
    ) -> None:
        super().__init__(content, status_code, headers, None, background)

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def error_response(err: ApiError, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": err.body()}, err.status, headers)
