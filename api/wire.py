"""Orders and fills in wire format, fast: the same output as ``engine.units``'
``order_to_wire`` / ``fill_to_wire`` with the market's decimal places computed once
per market instead of per call (this runs for every order answer)."""

from __future__ import annotations

from typing import Any

from engine.types import EngineError, Fill, Market, Order
from engine.units import parse_amount, price_increment, price_places, size_increment, size_places


class Grid:
    __slots__ = ("base_one", "pdiv", "pplaces", "quote_one", "quote_scale", "sdiv", "splaces")

    def __init__(self, market: Market) -> None:
        self.pplaces = price_places(market)
        self.splaces = size_places(market)
        self.quote_scale = market.quote_scale
        self.quote_one = 10**market.quote_scale
        self.base_one = 10**market.base_scale
        self.pdiv = 10 ** (market.quote_scale - self.pplaces)
        self.sdiv = 10 ** (market.base_scale - self.splaces)

    @staticmethod
    def _fmt(units: int, one: int, div: int, places: int) -> str:
        sign = "-" if units < 0 else ""
        whole, frac = divmod(abs(units), one)
        if not places:
            return f"{sign}{whole}"
        return f"{sign}{whole}.{frac // div:0{places}d}"

    def price(self, units: int) -> str:
        return self._fmt(units, self.quote_one, self.pdiv, self.pplaces)

    def size(self, units: int) -> str:
        return self._fmt(units, self.base_one, self.sdiv, self.splaces)

    def quote(self, units: int) -> str:
        return self._fmt(units, self.quote_one, 1, self.quote_scale)


_grids: dict[Market, Grid] = {}


def grid(market: Market) -> Grid:
    g = _grids.get(market)
    if g is None:
        if len(_grids) > 10_000:
            _grids.clear()
        g = _grids[market] = Grid(market)
    return g


def order(market: Market, o: Order) -> dict[str, Any]:
    g = grid(market)
    filled = o.filled
    return {
        "id": o.id,
        "client_order_id": o.client_order_id or None,
        "market": o.market,
        "side": o.side,
        "type": o.type,
        "time_in_force": o.time_in_force,
        "post_only": o.post_only,
        "price": g.price(o.price) if o.price else None,
        "amount": g.size(o.amount if o.amount else filled),
        "filled": g.size(filled),
        "remaining": g.size(o.remaining),
        "cost": g.quote(o.cost),
        "average": g.price(o.cost * g.base_one // filled) if filled else None,
        "quote_amount": g.quote(o.quote_amount) if o.quote_amount else None,
        "status": o.status,
        "created_ts": o.created_ts,
        "updated_ts": o.updated_ts,
    }


def fill(market: Market, f: Fill) -> dict[str, Any]:
    g = grid(market)
    base = f.fee_asset == market.base
    return {
        "trade_id": f.trade_id,
        "price": g.price(f.price),
        "size": g.size(f.size),
        "fee": Grid._fmt(f.fee, g.base_one, 1, market.base_scale) if base else g.quote(f.fee),
        "fee_asset": f.fee_asset,
        "maker_order_id": f.maker_order_id,
        "liquidity": f.liquidity,
    }


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
