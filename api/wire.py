"""Orders and fills in wire format (``engine.units``, whose per-market ``Grid`` keeps
the decimal places and powers of ten), and price/size parsing that formats the
increment only for the error message."""

from __future__ import annotations

from typing import Any

from engine.types import EngineError, Fill, Market, Order
from engine.units import (
    Grid,
    fill_to_wire,
    grid,
    order_to_wire,
    parse_amount,
    price_increment,
    size_increment,
)

__all__ = ["Grid", "fill", "grid", "order", "parse_price", "parse_size"]


def order(market: Market, o: Order) -> dict[str, Any]:
    return order_to_wire(market, o)


def fill(market: Market, f: Fill) -> dict[str, Any]:
    return fill_to_wire(market, f)


def parse_price(market: Market, text: object) -> int:
    """``engine.units.parse_price``, without formatting the increment unless it fails."""
    value = parse_amount(market.quote_scale, text, "price")
    if value % market.tick:
        raise EngineError("BAD_PRECISION", f"price must be a multiple of {price_increment(market)}")
    return value


def parse_size(market: Market, text: object, what: str = "amount") -> int:
    value = parse_amount(market.base_scale, text, what)
    if value % market.lot:
        raise EngineError("BAD_PRECISION", f"{what} must be a multiple of {size_increment(market)}")
    return value
