"""Decimal strings on the wire <-> integer minimal units inside (pure, no I/O).

Prices are integers in quote minimal units per whole base unit; sizes in base
minimal units (docs/internals.md). Parsing never goes through float.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any

from engine.types import EngineError, Fill, Market, Order

_DECIMAL = re.compile(r"^(0|[1-9][0-9]{0,29})(\.[0-9]{1,30})?\Z")  # \Z: $ allows a final "\n"


def parse_amount(scale: int, text: Any, what: str = "amount") -> int:
    """Parse a non-negative decimal string into minimal units of ``scale``."""
    if not isinstance(text, str) or not _DECIMAL.match(text):
        raise EngineError("INVALID_PARAM", f'{what} must be a decimal string like "1.25"')
    whole, _, frac = text.partition(".")
    frac = frac.rstrip("0")
    if len(frac) > scale:
        raise EngineError("BAD_PRECISION", f"{what} has more than {scale} decimals")
    return int(whole) * 10**scale + (int(frac.ljust(scale, "0")) if frac else 0)


def parse_price(market: Market, text: Any) -> int:
    """A decimal price string -> units; a multiple of the tick (the increment is only
    formatted for the error message)."""
    value = parse_amount(market.quote_scale, text, "price")
    if value % market.tick:
        raise EngineError("BAD_PRECISION", f"price must be a multiple of {price_increment(market)}")
    return value


def parse_size(market: Market, text: Any, what: str = "amount") -> int:
    """A decimal size string -> units; a multiple of the lot."""
    value = parse_amount(market.base_scale, text, what)
    if value % market.lot:
        raise EngineError("BAD_PRECISION", f"{what} must be a multiple of {size_increment(market)}")
    return value


@lru_cache(maxsize=4096)
def decimals(units: int, scale: int) -> int:
    """Number of decimals needed to show ``units`` of a ``scale`` exactly (memoized:
    called for every price and size formatted, with a market's few increments)."""
    if units == 0:
        return 0
    exponent = Decimal(units).scaleb(-scale).normalize().as_tuple().exponent
    assert isinstance(exponent, int)
    return max(0, -exponent)


_POW10 = tuple(10**i for i in range(64))


def format_amount(scale: int, units: int, places: int | None = None) -> str:
    """Integer minimal units -> decimal string with ``places`` decimals (default: scale;
    extra digits of ``units`` are cut, never rounded)."""
    if places is None:
        places = scale
    if units < 0:
        return "-" + format_amount(scale, -units, places)
    whole, frac = divmod(units, _POW10[scale] if scale < 64 else 10**scale)
    if not places:
        return str(whole)
    if places <= scale:
        frac //= _POW10[scale - places]
    else:
        frac *= 10 ** (places - scale)
    return f"{whole}.{frac:0{places}d}"


def price_places(market: Market) -> int:
    return decimals(market.tick, market.quote_scale)


def size_places(market: Market) -> int:
    return decimals(market.lot, market.base_scale)


class Grid:
    """A market's formatters, with its decimal places and powers of ten computed once:
    the same strings as :func:`format_amount` (prices, sizes, quote amounts)."""

    __slots__ = ("base_one", "base_scale", "pdiv", "pplaces", "quote_one", "quote_scale",
                 "sdiv", "splaces")  # fmt: skip

    def __init__(self, market: Market) -> None:
        self.pplaces = price_places(market)
        self.splaces = size_places(market)
        self.base_scale = market.base_scale
        self.quote_scale = market.quote_scale
        self.quote_one = 10**market.quote_scale
        self.base_one = 10**market.base_scale
        self.pdiv = 10 ** (market.quote_scale - self.pplaces)
        self.sdiv = 10 ** (market.base_scale - self.splaces)

    @staticmethod
    def fmt(units: int, one: int, div: int, places: int) -> str:
        """``units`` / ``one`` with ``places`` decimals (the digits below ``div`` cut)."""
        if units < 0:
            return "-" + Grid.fmt(-units, one, div, places)
        whole, frac = divmod(units, one)
        if not places:
            return str(whole)
        return f"{whole}.{frac // div:0{places}d}"

    def price(self, units: int) -> str:
        return self.fmt(units, self.quote_one, self.pdiv, self.pplaces)

    def size(self, units: int) -> str:
        return self.fmt(units, self.base_one, self.sdiv, self.splaces)

    def quote(self, units: int) -> str:
        return self.fmt(units, self.quote_one, 1, self.quote_scale)

    def base(self, units: int) -> str:
        return self.fmt(units, self.base_one, 1, self.base_scale)


_grids: dict[Market, Grid] = {}
_last: dict[str, tuple[Market, Grid]] = {}  # market id -> the last market object seen


def grid(market: Market) -> Grid:
    """The market's :class:`Grid` (kept per market value: a changed market gets a new
    one). Callers pass the same cached Market object again and again, so it is found
    by identity first (a dataclass hash goes through all its fields).

    The identity cache holds one object per market id, the last one seen: a node
    rereads the registry every second and gets new Market objects each time; keyed
    by ``id(market)`` it kept every one of them alive (up to 10,000 at a time)."""
    seen = _last.get(market.id)
    if seen is not None and seen[0] is market:
        return seen[1]
    g = _grids.get(market)
    if g is None:
        if len(_grids) > 10_000:
            _grids.clear()
        g = _grids[market] = Grid(market)
    if len(_last) > 10_000:
        _last.clear()
    _last[market.id] = (market, g)
    return g


def format_price(market: Market, units: int) -> str:
    return grid(market).price(units)


def format_size(market: Market, units: int) -> str:
    return grid(market).size(units)


def format_quote(market: Market, units: int) -> str:
    return grid(market).quote(units)


def price_increment(market: Market) -> str:
    return format_price(market, market.tick)


def size_increment(market: Market) -> str:
    return format_size(market, market.lot)


def market_to_wire(market: Market) -> dict[str, Any]:
    return {
        "id": market.id,
        "base": market.base,
        "quote": market.quote,
        "price_increment": price_increment(market),
        "size_increment": size_increment(market),
        "min_size": format_size(market, market.min_size),
        "max_notional": format_quote(market, market.max_notional),
        "status": market.status,
        "maker_fee_bps": market.maker_fee_bps,
        "taker_fee_bps": market.taker_fee_bps,
    }


def market_from_wire(data: dict[str, Any], scales: dict[str, int]) -> Market:
    """Build a Market from the admin API body; ``scales`` maps asset -> scale."""
    try:
        base, quote = data["base"], data["quote"]
        base_scale, quote_scale = scales[base], scales[quote]
    except KeyError as exc:
        raise EngineError("INVALID_PARAM", f"unknown asset or missing field {exc}") from None
    tick = parse_amount(quote_scale, data.get("price_increment"), "price_increment")
    lot = parse_amount(base_scale, data.get("size_increment"), "size_increment")
    min_size = parse_amount(
        base_scale, data.get("min_size", data.get("size_increment")), "min_size"
    )
    default_max = 2**53 - 1
    max_notional = (
        parse_amount(quote_scale, data["max_notional"], "max_notional")
        if data.get("max_notional") is not None
        else default_max
    )
    if tick <= 0 or lot <= 0:
        raise EngineError("INVALID_PARAM", "increments must be positive")
    if (tick * lot) % 10**base_scale:
        raise EngineError(
            "INVALID_PARAM",
            "price_increment x size_increment must be a multiple of the quote's minimal unit",
        )
    if min_size < lot or min_size % lot:
        raise EngineError("INVALID_PARAM", "min_size must be a positive multiple of size_increment")
    if not 0 < max_notional <= default_max:
        raise EngineError("INVALID_PARAM", "max_notional out of range")
    fees = []
    for name in ("maker_fee_bps", "taker_fee_bps"):
        value = data.get(name, 0)
        if type(value) is not int or not 0 <= value <= 1000:
            raise EngineError("INVALID_PARAM", f"{name} must be an integer 0..1000")
        fees.append(value)
    market_id = data.get("id") or f"{base}-{quote}"
    if not isinstance(market_id, str) or not re.fullmatch(
        r"[A-Z0-9]{2,10}-[A-Z0-9]{2,10}", market_id
    ):
        raise EngineError("INVALID_PARAM", "market id must look like BTC-USD")
    return Market(
        id=market_id,
        base=base,
        quote=quote,
        base_scale=base_scale,
        quote_scale=quote_scale,
        tick=tick,
        lot=lot,
        min_size=min_size,
        max_notional=max_notional,
        maker_fee_bps=fees[0],
        taker_fee_bps=fees[1],
        status=data.get("status", "TRADING"),
    )


def notional(market: Market, price: int, size: int) -> int:
    """Quote units of ``size`` at ``price`` (exact: see docs/internals.md)."""
    return (price // market.tick) * (size // market.lot) * market.mult


def fee(amount: int, bps: int) -> int:
    """ceil(amount * bps / 10000), the exchange's favour."""
    return -(-amount * bps // 10000)


def order_to_wire(market: Market, order: Order) -> dict[str, Any]:
    return order_state_to_wire(
        grid(market), order, order.filled, order.cost, order.status, order.updated_ts
    )


def order_state_to_wire(
    g: Grid,
    order: Order,
    filled: int,
    cost: int,
    status: str,
    updated_ts: int,
    amount: int | None = None,
) -> dict[str, Any]:
    """:func:`order_to_wire` of ``order`` with its state (fill, status, time and, if
    given, amount) replaced."""
    amount = order.amount if amount is None else amount
    # a market buy by quote_amount has no base amount: it shows what it filled so far
    # (so nothing remains in base: never amount 0 - filled, a negative remaining)
    shown = amount if amount else filled
    remaining = shown - filled if status == "NEW" or status == "PARTIALLY_FILLED" else 0
    return {
        "id": order.id,
        "client_order_id": order.client_order_id or None,
        "market": order.market,
        "side": order.side,
        "type": order.type,
        "time_in_force": order.time_in_force,
        "post_only": order.post_only,
        "price": g.price(order.price) if order.price else None,
        "amount": g.size(shown),
        "filled": g.size(filled),
        "remaining": g.size(remaining),
        "cost": g.quote(cost),
        "average": g.price(cost * g.base_one // filled) if filled else None,
        # the user's budget; a market buy by amount has an internal one (cost + 5%)
        "quote_amount": g.quote(order.quote_amount) if order.quote_amount and not amount else None,
        "status": status,
        "created_ts": order.created_ts,
        "updated_ts": updated_ts,
    }


def fill_to_wire(market: Market, fill: Fill) -> dict[str, Any]:
    g = grid(market)
    return {
        "trade_id": fill.trade_id,
        "price": g.price(fill.price),
        "size": g.size(fill.size),
        "fee": g.base(fill.fee) if fill.fee_asset == market.base else g.quote(fill.fee),
        "fee_asset": fill.fee_asset,
        "maker_order_id": fill.maker_order_id,
        "liquidity": fill.liquidity,
    }


def is_decimal_text(value: Any) -> bool:
    try:
        return isinstance(value, str) and bool(_DECIMAL.match(value)) and Decimal(value) >= 0
    except InvalidOperation:
        return False
