"""Error codes of PROTOCOL.md and their HTTP statuses.

Every refusal leaves the node as ``{"error": {"code", "message"}}``; messages are
written for the client and never carry a stack trace, key name or SQL.
"""

from __future__ import annotations

from typing import Any

from engine.types import EngineError

STATUS: dict[str, int] = {
    "INVALID_PARAM": 400,
    "BAD_PRECISION": 400,
    "UNKNOWN_MARKET": 400,
    "MARKET_NOT_TRADING": 400,
    "INSUFFICIENT_FUNDS": 400,
    "POST_ONLY_WOULD_TAKE": 400,
    "UNAUTHORIZED": 401,
    "FORBIDDEN": 403,
    "UNKNOWN_ORDER": 404,
    "DUPLICATE_CLIENT_ORDER_ID": 409,
    "RATE_LIMITED": 429,
    "INTERNAL": 500,
    "UNAVAILABLE": 503,
    # Additions (docs/protocol.md): codes PROTOCOL.md has no word for.
    "NOT_FOUND": 404,
    "METHOD_NOT_ALLOWED": 405,
    "PAYLOAD_TOO_LARGE": 413,
    "UPGRADE_REQUIRED": 426,
}


class ApiError(Exception):
    """A refusal with a PROTOCOL.md code; ``extra`` goes into the error object."""

    def __init__(self, code: str, message: str, **extra: Any) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code if code in STATUS else "INTERNAL"
        self.message = message
        self.extra = extra

    @property
    def status(self) -> int:
        return STATUS[self.code]

    def body(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, **self.extra}


def from_engine(exc: EngineError) -> ApiError:
    if exc.code in STATUS:
        return ApiError(exc.code, exc.message)
    return ApiError("INTERNAL", "internal error")


def unavailable() -> ApiError:
    return ApiError("UNAVAILABLE", "service temporarily unavailable, try again")


def internal() -> ApiError:
    return ApiError("INTERNAL", "internal error; the outcome is unknown")
