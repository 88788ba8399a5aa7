"""The operations behind HTTP routes and WebSocket methods (one implementation).

Each function takes the node, the caller and the raw params (a parsed JSON
object), validates them with ``api.schemas``, converts decimal strings to
integer units with ``engine.units`` and calls the engine facade. Results are in
PROTOCOL.md wire format.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

import orjson

from api import schemas as S
from api.errors import ApiError
from engine.pubsub import publish
from engine.types import Balance, Market, Order, OrderRejected, OrderRequest
from engine.units import (
    fill_to_wire,
    format_amount,
    market_to_wire,
    order_to_wire,
    parse_amount,
    parse_price,
    parse_size,
)

if TYPE_CHECKING:
    from api.node import Node

ASSETS_CACHE_S = 5.0
WITHDRAWAL_STATUS = {"requested": "PENDING", "done": "COMPLETED", "rejected": "REJECTED"}


def now_ms() -> int:
    return time.time_ns() // 1_000_000


# -- reference data ----------------------------------------------------------------


async def scales(node: Node) -> dict[str, int]:
    """asset -> scale, cached for a few seconds."""
    cached = node.cache.get("scales")
    if cached is not None and time.monotonic() - cached[1] < ASSETS_CACHE_S:
        return cached[0]
    return await listed_assets(node)


async def listed_assets(node: Node) -> dict[str, int]:
    """asset -> scale of every listed asset, read now: a listing shows an asset created
    a moment ago through another node. Refreshes the cache of :func:`scales`."""
    value = {a.symbol: a.scale for a in await node.ex.assets()}
    node.cache["scales"] = (value, time.monotonic())
    return value


async def asset_scale(node: Node, asset: str) -> int:
    known = await scales(node)
    if asset not in known:
        known = await listed_assets(node)
    if asset not in known:
        raise ApiError("INVALID_PARAM", f"unknown asset {asset}")
    return known[asset]


async def market(node: Node, market_id: str, fresh: bool = False) -> Market:
    return await node.ex.market(market_id, fresh)


async def markets(node: Node) -> list[dict[str, Any]]:
    return [market_to_wire(m) for m in await node.ex.markets()]


# -- orders ------------------------------------------------------------------------


class BelowMinSize(ApiError):
    """An order refused by the node's copy of the market's ``min_size``: the one
    parameter checked here that an admin can change (increments cannot change)."""


def order_request(m: Market, p: S.PlaceOrder) -> OrderRequest:
    """Shape and grid checks done here, so refused orders touch nothing."""
    price = amount = quote_amount = 0
    tif = p.time_in_force
    if p.type == "limit":
        if p.price is None:
            raise ApiError("INVALID_PARAM", "price is required for limit orders")
        if p.amount is None:
            raise ApiError("INVALID_PARAM", "amount is required")
        if p.quote_amount is not None:
            raise ApiError("INVALID_PARAM", "quote_amount is only for market buys")
        price = parse_price(m, p.price)
        if price <= 0:
            raise ApiError("INVALID_PARAM", "price must be positive")
        if p.post_only and tif != "GTC":
            raise ApiError("INVALID_PARAM", "post-only orders are GTC")
    else:
        if p.price is not None:
            raise ApiError("INVALID_PARAM", "market orders take no price")
        if p.post_only:
            raise ApiError("INVALID_PARAM", "market orders cannot be post-only")
        if p.side == "sell" and (p.amount is None or p.quote_amount is not None):
            raise ApiError("INVALID_PARAM", "a market sell needs amount (and no quote_amount)")
        if p.side == "buy" and (p.amount is None) == (p.quote_amount is None):
            raise ApiError(
                "INVALID_PARAM", "a market buy needs exactly one of amount, quote_amount"
            )
        if p.quote_amount is not None:
            if tif == "FOK":
                raise ApiError("INVALID_PARAM", "FOK needs an amount")
            quote_amount = parse_amount(m.quote_scale, p.quote_amount, "quote_amount")
            if quote_amount <= 0:
                raise ApiError("INVALID_PARAM", "quote_amount must be positive")
        tif = "FOK" if tif == "FOK" else "IOC"
    if p.amount is not None:
        amount = parse_size(m, p.amount)
        if amount <= 0:
            raise ApiError("INVALID_PARAM", "amount must be positive")
        if amount < m.min_size:
            raise BelowMinSize("INVALID_PARAM", "amount is below the market's min_size")
    return OrderRequest(
        market=m.id,
        side=p.side,
        type=p.type,
        amount=amount,
        price=price,
        time_in_force=tif,
        post_only=p.post_only,
        client_order_id=p.client_order_id or "",
        stp=p.stp,
        quote_amount=quote_amount,
    )


async def place_order(node: Node, user_id: str, params: Any) -> dict[str, Any]:
    p = S.parse(S.PlaceOrder, params)
    m = await market(node, p.market)
    try:
        req = order_request(m, p)
    except BelowMinSize:
        # the node's copy may be up to MARKET_CACHE_S old: a min_size lowered a moment
        # ago (on any node) does not refuse with the old one: reread once, then decide
        m = await market(node, p.market, fresh=True)
        req = order_request(m, p)
    try:
        result = await node.ex.place_order(user_id, req)
    except OrderRejected as exc:  # recorded REJECTED: say which order (as a duplicate does)
        raise ApiError(exc.code, exc.message, order=order_to_wire(m, exc.order)) from None
    out = order_to_wire(m, result.order)
    if result.duplicate:
        raise ApiError(
            "DUPLICATE_CLIENT_ORDER_ID", "client_order_id already used: existing order", order=out
        )
    out["fills"] = [fill_to_wire(m, f) for f in result.fills]
    return out


async def orders_to_wire(node: Node, orders: list[Order]) -> list[dict[str, Any]]:
    out = []
    for order in orders:
        out.append(order_to_wire(await market(node, order.market), order))
    return out


async def cancel_order(node: Node, user_id: str, params: Any) -> dict[str, Any]:
    p = S.parse(S.CancelOrder, params)
    _exactly_one_id(p)
    order = await node.ex.cancel_order(
        user_id, order_id=p.order_id, client_order_id=p.client_order_id
    )
    return order_to_wire(await market(node, order.market), order)


async def amend_order(node: Node, user_id: str, params: Any) -> dict[str, Any]:
    """Reduce an open order's amount in place (keeps its time priority)."""
    p = S.parse(S.AmendOrder, params)
    _exactly_one_id(p)
    m, order_id = await node.ex.locate_open(
        user_id, order_id=p.order_id, client_order_id=p.client_order_id
    )
    amount = parse_size(m, p.amount)
    if amount <= 0:
        raise ApiError("INVALID_PARAM", "amount must be positive")
    return order_to_wire(m, await node.ex.amend_order(user_id, m, order_id, amount))


async def cancel_all(node: Node, user_id: str, params: Any) -> list[dict[str, Any]]:
    p = S.parse(S.CancelAll, params)
    return await orders_to_wire(node, await node.ex.cancel_all(user_id, p.market))


async def open_orders(node: Node, user_id: str, params: Any) -> list[dict[str, Any]]:
    p = S.parse(S.OpenOrders, params)
    if p.market is not None:
        await market(node, p.market)
    return await orders_to_wire(node, await node.ex.open_orders(user_id, p.market))


async def get_order(node: Node, user_id: str, params: Any) -> dict[str, Any]:
    p = S.parse(S.GetOrder, params)
    _exactly_one_id(p)
    if p.client_order_id is not None:
        order = await node.ex.get_order_by_client_id(user_id, p.client_order_id)
    else:
        order = await node.ex.get_order(user_id, p.order_id)
    return order_to_wire(await market(node, order.market), order)


def _exactly_one_id(p: S.CancelOrder | S.GetOrder | S.AmendOrder) -> None:
    if (p.order_id is None) == (p.client_order_id is None):
        raise ApiError("INVALID_PARAM", "give exactly one of order_id, client_order_id")


# -- wallet ------------------------------------------------------------------------


async def push_balance(node: Node, user_id: str, asset: str) -> None:
    """Publish the ``balances`` push of one asset after a wallet change made here.

    Fills and transfer credits are pushed by the settler; deposits, withdrawals and
    the payer's side of a transfer change the balance at once, so the node that
    made the change pushes it (best effort: the balance itself is already right).
    """
    from engine.accounts import balance
    from engine.settlement import balance_push

    try:
        b = await balance(node.redis, user_id, asset)
        push = balance_push(b, await asset_scale(node, asset))
        await publish(node.redis, f"hftx:u:{user_id}", orjson.dumps(push))
    except Exception:  # never fail the request for a push
        pass


def balance_to_wire(b: Balance, scale: int) -> dict[str, Any]:
    return {
        "asset": b.asset,
        "free": format_amount(scale, b.available),
        "locked": format_amount(scale, b.locked),
        "total": format_amount(scale, b.total),
    }


async def balances(node: Node, user_id: str, params: Any = None) -> list[dict[str, Any]]:
    S.parse(S.Empty, params)
    # read-your-writes: the fills of an order just answered are applied (api.catchup)
    known, _ = await asyncio.gather(listed_assets(node), node.catchup.settled_for(user_id))
    held = {b.asset: b for b in await node.ex.balances(user_id)}
    # every listed asset, zeros included (as Binance's account and Coinbase's accounts)
    return [
        balance_to_wire(held.get(asset) or Balance(asset, 0, 0, 0), known.get(asset, 8))
        for asset in sorted(known.keys() | held.keys())
    ]


def positive_amount(scale: int, text: Any, what: str = "amount") -> int:
    """A decimal string in minimal units of ``scale``; INVALID_PARAM unless above 0."""
    amount = parse_amount(scale, text, what)
    if amount <= 0:
        raise ApiError("INVALID_PARAM", f"{what} must be positive")
    return amount


async def addresses(node: Node, user_id: str, params: Any = None) -> list[dict[str, str]]:
    S.parse(S.Empty, params)
    return [{"asset": a, "address": addr} for a, addr in await node.ex.addresses(user_id)]


async def transfer(node: Node, user_id: str, params: Any) -> dict[str, Any]:
    p = S.parse(S.Transfer, params)
    scale = await asset_scale(node, p.asset)
    amount = positive_amount(scale, p.amount)
    result = await node.ex.transfer(user_id, p.transfer_id, p.asset, amount, p.to_address)
    await push_balance(node, user_id, p.asset)
    # answered once the payee is credited (the settler's work, normally ~10 ms)
    await node.catchup.credited(result.payee, user_id, result.outbox_id)
    return {
        "transfer_id": p.transfer_id,
        "asset": p.asset,
        "amount": format_amount(scale, amount),
        "to_address": p.to_address,
        "status": "COMPLETED",
        "replay": bool(getattr(result, "replay", False)),
    }


async def request_withdrawal(node: Node, user_id: str, params: Any) -> dict[str, Any]:
    p = S.parse(S.Withdrawal, params)
    scale = await asset_scale(node, p.asset)
    amount = positive_amount(scale, p.amount)
    result = await node.ex.request_withdrawal(user_id, p.withdrawal_id, p.asset, amount, p.address)
    await push_balance(node, user_id, p.asset)
    return {
        "withdrawal_id": p.withdrawal_id,
        "asset": p.asset,
        "amount": format_amount(scale, amount),
        "address": p.address,
        "status": WITHDRAWAL_STATUS.get(result.state, "PENDING"),
        "replay": bool(result.replay),
    }


async def withdrawals(node: Node, user_id: str, params: Any = None) -> list[dict[str, Any]]:
    S.parse(S.Empty, params)
    known = await scales(node)
    return [
        {
            "withdrawal_id": w.id,
            "asset": w.asset,
            "amount": format_amount(known.get(w.asset, 8), w.amount),
            "address": w.address,
            "status": WITHDRAWAL_STATUS.get(w.state, "PENDING"),
            "ts": w.ts,
        }
        for w in await node.ex.withdrawals(user_id)
    ]


# -- admin -------------------------------------------------------------------------


async def deposit(node: Node, params: Any) -> dict[str, Any]:
    p = S.parse(S.Deposit, params)
    scale = await asset_scale(node, p.asset)
    amount = positive_amount(scale, p.amount)
    result = await node.ex.deposit(p.deposit_id, p.address, p.asset, amount)
    if not result.replay:  # a replay changed nothing: no second identical push
        await push_balance(node, result.user, p.asset)
    return {
        "deposit_id": p.deposit_id,
        "address": p.address,
        "asset": p.asset,
        "amount": format_amount(scale, amount),
        "user_id": result.user,
        "replay": bool(result.replay),
    }


async def finish_withdrawal(node: Node, withdrawal_id: str, complete: bool) -> dict[str, Any]:
    if not S.OP_ID.match(withdrawal_id):
        raise ApiError("INVALID_PARAM", "unknown withdrawal")
    if complete:
        result = await node.ex.complete_withdrawal(withdrawal_id)
    else:
        result = await node.ex.reject_withdrawal(withdrawal_id)
    for w in await node.ex.withdrawals(result.user):
        if w.id == withdrawal_id and not result.replay:
            await push_balance(node, result.user, w.asset)
    return {
        "withdrawal_id": withdrawal_id,
        "user_id": result.user,
        "status": WITHDRAWAL_STATUS.get(result.state, "PENDING"),
        "replay": bool(result.replay),
    }


async def create_asset(node: Node, params: Any) -> dict[str, Any]:
    p = S.parse(S.NewAsset, params)
    asset = await node.ex.create_asset(p.symbol, p.scale)
    node.cache.pop("scales", None)
    return {"symbol": asset.symbol, "scale": asset.scale}


async def create_market(node: Node, params: Any) -> dict[str, Any]:
    from engine.units import market_from_wire

    p = S.parse(S.NewMarket, params)
    known = await scales(node)
    for symbol in (p.base, p.quote):
        if symbol not in known:
            known = await listed_assets(node)
            if symbol not in known:
                raise ApiError("INVALID_PARAM", f"unknown asset {symbol}")
    if p.base == p.quote:
        raise ApiError("INVALID_PARAM", "base and quote must differ")
    if p.id != f"{p.base}-{p.quote}":
        raise ApiError("INVALID_PARAM", "market id must be BASE-QUOTE")
    m = market_from_wire(p.model_dump(exclude_none=True), known)
    created = await node.ex.create_market(m, keep_status=p.status is None)
    return market_to_wire(created)


async def set_market_status(node: Node, market_id: str, params: Any) -> dict[str, Any]:
    p = S.parse(S.MarketStatus, params)
    if not S.MARKET_ID.match(market_id):
        raise ApiError("UNKNOWN_MARKET", "unknown market")
    return market_to_wire(await node.ex.set_market_status(market_id, p.status))


def now() -> dict[str, Any]:
    return {"ts": now_ms()}
