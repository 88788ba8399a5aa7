"""Request schemas (pydantic, strict): the shape of every body and WS ``params``.

Strict means no coercion: decimals only as strings, integers only as JSON
integers, booleans only as JSON booleans; unknown fields are refused. A field
given as ``null`` is a field not given (:func:`parse`). Turning
decimal strings into integer units needs the market and happens in
``api.service`` through ``engine.units``.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Annotated, Any, Literal, TypeVar, get_args, get_type_hints

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from api.errors import ApiError

MARKET_ID = re.compile(r"^[A-Z0-9]{2,10}-[A-Z0-9]{2,10}\Z")  # \Z: $ allows a final "\n"
OP_ID = re.compile(r"^[A-Za-z0-9._:-]{1,36}\Z")

Decimal = Annotated[str, StringConstraints(min_length=1, max_length=64)]
MarketId = Annotated[str, StringConstraints(pattern=r"^[A-Z0-9]{2,10}-[A-Z0-9]{2,10}$")]
AssetSymbol = Annotated[str, StringConstraints(pattern=r"^[A-Z0-9]{2,10}$")]
ClientOrderId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._:-]{1,36}$")]
OrderId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._:-]{1,64}$")]
OpId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._:-]{1,36}$")]
Address = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._:-]{1,128}$")]
Email = Annotated[str, StringConstraints(min_length=3, max_length=254)]
Password = Annotated[str, StringConstraints(max_length=1024)]
Token = Annotated[str, StringConstraints(min_length=1, max_length=4096)]
FeeBps = Annotated[int, Field(ge=0, le=1000)]

PUBLIC_CHANNELS = ("book", "trades", "ticker", "heartbeat")
PRIVATE_CHANNELS = ("orders", "balances", "notifications")
Channel = Literal["book", "trades", "ticker", "heartbeat", "orders", "balances", "notifications"]

MAX_BOOK_DEPTH = 1000
DEFAULT_BOOK_DEPTH = 50


class Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class Credentials(Strict):
    email: Email
    password: Password


class AuthParams(Strict):
    token: Token


class PlaceOrder(Strict):
    market: MarketId
    side: Literal["buy", "sell"]
    type: Literal["limit", "market"]
    amount: Decimal | None = None
    price: Decimal | None = None
    time_in_force: Literal["GTC", "IOC", "FOK"] = "GTC"
    post_only: bool = False
    client_order_id: ClientOrderId | None = None
    stp: Literal["cancel_newest", "cancel_oldest", "cancel_both"] = "cancel_newest"
    quote_amount: Decimal | None = None


class CancelOrder(Strict):
    order_id: OrderId | None = None
    client_order_id: ClientOrderId | None = None


class AmendOrder(Strict):
    order_id: OrderId | None = None
    client_order_id: ClientOrderId | None = None
    amount: Decimal


class CancelOnDisconnect(Strict):
    enabled: bool


class CancelAll(Strict):
    market: MarketId | None = None


class OpenOrders(Strict):
    market: MarketId | None = None


class GetOrder(Strict):
    order_id: OrderId | None = None
    client_order_id: ClientOrderId | None = None


class Empty(Strict):
    pass


class Subscribe(Strict):
    channel: Channel
    markets: Annotated[list[MarketId], Field(max_length=50)] | None = None
    depth: Annotated[int, Field(ge=1, le=MAX_BOOK_DEPTH)] | None = None


class Transfer(Strict):
    transfer_id: OpId
    asset: AssetSymbol
    amount: Decimal
    to_address: Address


class Withdrawal(Strict):
    withdrawal_id: OpId
    asset: AssetSymbol
    amount: Decimal
    address: Address


class Deposit(Strict):
    deposit_id: OpId
    address: Address
    asset: AssetSymbol
    amount: Decimal


class NewAsset(Strict):
    symbol: AssetSymbol
    scale: Annotated[int, Field(ge=0, le=18)]


class NewMarket(Strict):
    id: MarketId
    base: AssetSymbol
    quote: AssetSymbol
    price_increment: Decimal
    size_increment: Decimal
    min_size: Decimal
    maker_fee_bps: FeeBps
    taker_fee_bps: FeeBps
    max_notional: Decimal | None = None
    # as GET /markets shows it; not given: TRADING for a new market, unchanged for an
    # existing one (re-sending a market's spec must not reopen it when halted)
    status: Literal["TRADING", "HALT", "CANCEL_ONLY"] | None = None


class MarketStatus(Strict):
    status: Literal["TRADING", "HALT", "CANCEL_ONLY"]


M = TypeVar("M", bound=Strict)


@cache
def is_decimal_field(model: type[Strict], name: str) -> bool:
    """Whether ``model``'s field ``name`` is a :data:`Decimal` (optional or not)."""
    hint = get_type_hints(model, include_extras=True).get(name)
    return hint == Decimal or Decimal in get_args(hint)


def describe(exc: ValidationError, model: type[Strict] | None = None) -> str:
    """A short client message for the first problem, never echoing the input."""
    err = exc.errors(include_url=False, include_input=False)[0]
    where = ".".join(str(p) for p in err["loc"]) or "params"
    kind = err["type"]
    if kind == "missing":
        return f"{where} is required"
    if kind == "extra_forbidden":
        return f"unknown field {where[:40]}"  # the client's key: not echoed in full
    if kind == "model_type":
        return "params must be a JSON object"
    if kind == "string_pattern_mismatch":
        return f"{where} has an invalid format"
    if kind == "string_type":
        if model is not None and len(err["loc"]) == 1 and is_decimal_field(model, where):
            return f'{where} must be a string (decimals are strings, e.g. "1.25")'
        return f"{where} must be a string"
    return f"{where}: {err['msg']}"


def parse(model: type[M], data: Any) -> M:
    """``data`` (a body or WS ``params``) as ``model``. A field given as ``null`` counts
    as not given, for every field of every request (the common JSON-API convention):
    an optional field takes its default, a required one is "<field> is required"."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ApiError("INVALID_PARAM", "params must be a JSON object")
    if None in data.values():
        data = {k: v for k, v in data.items() if v is not None}
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise refusal(exc, model) from None


def refusal(exc: ValidationError, model: type[Strict]) -> ApiError:
    """INVALID_PARAM, but UNKNOWN_MARKET for a malformed market id (``BTCUSD``,
    ``btc-usd``): it names no listed market either (Binance's "Invalid symbol" for
    both), as the market ids of paths and query filters answer."""
    err = exc.errors(include_url=False, include_input=False)[0]
    if err["type"] == "string_pattern_mismatch" and err["loc"][:1] in (("market",), ("markets",)):
        return ApiError("UNKNOWN_MARKET", "unknown market")
    return ApiError("INVALID_PARAM", describe(exc, model))
