"""The one exception type of the client."""

from __future__ import annotations

from typing import Any


class HftxError(Exception):
    """An error answered by the exchange, or a transport failure seen by the client.

    ``code`` is a PROTOCOL.md error code (``INSUFFICIENT_FUNDS``, ...); the client adds
    ``UNAVAILABLE`` (503) when the connection is down or lost and ``TIMEOUT`` (504) when
    no answer came in time. As on the wire, a status >= 500 means the outcome of the
    request is unknown: query by ``client_order_id`` before retrying an order.
    """

    def __init__(
        self,
        code: str,
        message: str = "",
        status: int = 0,
        *,
        details: dict[str, Any] | None = None,
        result: Any = None,
    ) -> None:
        super().__init__(code, message, status)
        self.code = code
        self.message = message
        self.status = status
        self.details = details or {}
        """The whole error object as received (it may carry extra fields)."""
        self.result = result
        """An object sent along with the error (``result``, or ``order`` inside the
        error), e.g. the existing order of a ``DUPLICATE_CLIENT_ORDER_ID``."""

    def __str__(self) -> str:
        return f"{self.code} ({self.status}): {self.message}" if self.message else self.code

    @property
    def outcome_unknown(self) -> bool:
        return self.status >= 500


_DEFAULT_CODES = {
    400: "INVALID_PARAM",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "UNKNOWN_ORDER",
    409: "DUPLICATE_CLIENT_ORDER_ID",
    429: "RATE_LIMITED",
    503: "UNAVAILABLE",
}


def error_from_body(status: int, body: Any) -> HftxError:
    """Build an :class:`HftxError` from an error answer.

    Accepts ``{"error": {"code", "message", ...}}`` (optionally with a ``result``, or
    an ``order`` inside the error) and
    a flat ``{"code", "message"}``; anything else falls back to a code derived from
    the status.
    """
    detail = body.get("error", body) if isinstance(body, dict) else None
    result = body.get("result") if isinstance(body, dict) else None
    if isinstance(detail, dict) and isinstance(detail.get("code"), str):
        if result is None and isinstance(detail.get("order"), dict):
            result = detail["order"]
        message = str(detail.get("message", ""))
        return HftxError(detail["code"], message, status, details=detail, result=result)
    fallback = _DEFAULT_CODES.get(status, "INTERNAL" if status >= 500 else "INVALID_PARAM")
    message = detail if isinstance(detail, str) else (str(body) if body else "")
    return HftxError(fallback, message, status)
