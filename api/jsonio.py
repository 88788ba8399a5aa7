"""JSON in and out with orjson, with the limits of docs/protocol.md.

Parsing rejects NaN/Infinity and numbers that overflow a double (orjson does),
documents nested deeper than ``MAX_DEPTH`` and bodies larger than the caller's
limit. Floats are left in place: the schemas reject them for money fields.
"""

from __future__ import annotations

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
    return value


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
