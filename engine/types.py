"""Typed values exchanged between the engine facade and its callers.

Amounts are integers in minimal units (see docs/internals.md); turning them into
wire decimal strings is the job of ``engine.units``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Side = Literal["buy", "sell"]
OrderType = Literal["limit", "market"]
TimeInForce = Literal["GTC", "IOC", "FOK"]
Stp = Literal["cancel_newest", "cancel_oldest", "cancel_both"]
MarketStatus = Literal["TRADING", "HALT", "CANCEL_ONLY"]
OrderStatus = Literal["NEW", "PARTIALLY_FILLED", "FILLED", "CANCELED", "REJECTED", "EXPIRED"]


class EngineError(Exception):
    """A refused request: ``code`` is one of PROTOCOL.md's error codes."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class OrderRejected(EngineError):
    """An order the engine recorded ``REJECTED`` (post-only that would take): the
    refusal, with the order as recorded (its id, its ``client_order_id`` now used)."""

    def __init__(self, code: str, message: str, order: Order) -> None:
        super().__init__(code, message)
        self.order = order


@dataclass(frozen=True, slots=True)
class Asset:
    symbol: str
    scale: int


@dataclass(frozen=True, slots=True)
class Market:
    """A market's configuration; integers in minimal units (docs/internals.md)."""

    id: str
    base: str
    quote: str
    base_scale: int
    quote_scale: int
    tick: int  # quote units per whole base unit
    lot: int  # base units
    min_size: int  # base units
    max_notional: int  # quote units
    maker_fee_bps: int
    taker_fee_bps: int
    status: MarketStatus = "TRADING"

    @property
    def mult(self) -> int:
        return self.tick * self.lot // 10**self.base_scale


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """A validated order, in integers. ``price`` is 0 for market orders."""

    market: str
    side: Side
    type: OrderType
    amount: int  # base units; 0 for a market buy by quote budget
    price: int = 0
    time_in_force: TimeInForce = "GTC"
    post_only: bool = False
    client_order_id: str = ""
    stp: Stp = "cancel_newest"
    quote_amount: int = 0  # quote budget of a market buy


@dataclass(slots=True)
class Order:
    id: str
    user_id: str
    market: str
    side: Side
    type: OrderType
    time_in_force: TimeInForce
    post_only: bool
    price: int
    amount: int
    filled: int
    cost: int  # quote units filled
    status: OrderStatus
    created_ts: int
    updated_ts: int
    client_order_id: str = ""
    quote_amount: int = 0

    @property
    def remaining(self) -> int:
        if self.status in ("NEW", "PARTIALLY_FILLED"):
            return self.amount - self.filled
        return 0


@dataclass(frozen=True, slots=True)
class Fill:
    trade_id: int
    price: int
    size: int
    quote: int
    fee: int
    fee_asset: str
    maker_order_id: str
    liquidity: Literal["maker", "taker"]


@dataclass(slots=True)
class PlaceResult:
    order: Order
    fills: list[Fill] = field(default_factory=list)
    duplicate: bool = False  # client_order_id already used: ``order`` is the existing one


@dataclass(frozen=True, slots=True)
class Balance:
    asset: str
    available: int
    held: int
    escrow: int

    @property
    def locked(self) -> int:
        return self.held + self.escrow

    @property
    def total(self) -> int:
        return self.available + self.held + self.escrow


@dataclass(frozen=True, slots=True)
class BookSnapshot:
    market: str
    seq: int
    bids: list[tuple[int, int]]  # (price, size), best first
    asks: list[tuple[int, int]]
