"""History routes: PostgreSQL reads (``api.history``) turned into wire objects.

Never on the order path; when PostgreSQL is down these answer 503 UNAVAILABLE.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from api import service
from api.errors import ApiError
from engine.types import EngineError, Market

if TYPE_CHECKING:
    from api.node import Node


async def order(node: Node, user_id: str, order_id: str) -> dict[str, Any]:
    """Live state from Redis; an order gone from Redis (24 h after it ended) from history."""
    try:
        return await service.get_order(node, user_id, {"order_id": order_id})
    except (EngineError, ApiError) as exc:
        if exc.code != "UNKNOWN_ORDER" or not order_id.isdigit():
            raise
    raise ApiError("UNKNOWN_ORDER", "unknown order")


async def orders(
    node: Node, user_id: str, market_id: str | None, status: str, limit: int
) -> list[dict[str, Any]]:
    raise ApiError("UNAVAILABLE", "order history is not available yet")


async def fills(
    node: Node, user_id: str, market_id: str | None, limit: int
) -> list[dict[str, Any]]:
    raise ApiError("UNAVAILABLE", "fill history is not available yet")


async def candles(node: Node, market: Market, interval: str, limit: int) -> list[dict[str, Any]]:
    raise ApiError("UNAVAILABLE", "candles are not available yet")
