"""History routes: PostgreSQL reads (``api.history``) turned into wire objects.

Never on the order path; when PostgreSQL is down these answer 503 UNAVAILABLE.
Reads of trades and orders first wait (bounded) for the drain to commit what the
engine had done when the request came (:mod:`api.catchup`): read-your-writes.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, TypeVar

from redis.exceptions import RedisError

from api import history, service
from api.db import BEST_EFFORT_S
from api.errors import ApiError
from api.jsonio import JSONResponse
from api.marketdata import stream_trades
from engine import registry
from engine.exchange import trade_to_wire as stream_trade_to_wire
from engine.types import EngineError, Market, Order
from engine.units import format_amount, format_price, format_size, order_to_wire

if TYPE_CHECKING:
    from api.node import Node

T = TypeVar("T")


async def _market_or_none(node: Node, market_id: str) -> Market | None:
    try:
        return await service.market(node, market_id)
    except EngineError:
        return None


async def _caught_up(node: Node, market_id: str | None) -> None:
    """Wait for the drain on ``market_id`` (all markets when None): read-your-writes."""
    try:
        ids = [market_id] if market_id else await registry.market_ids(node.redis)
    except (RedisError, OSError):
        return  # history is read without the wait (PostgreSQL may still answer)
    await node.catchup.drained(ids)


async def order(node: Node, user_id: str, order_id: str) -> dict[str, Any]:
    """Live state from Redis; an order gone from Redis (24 h after it ended) from history."""
    try:
        return await service.get_order(node, user_id, {"order_id": order_id})
    except (EngineError, ApiError) as exc:
        if exc.code != "UNKNOWN_ORDER" or not order_id.isdigit() or len(order_id) > 20:
            raise
    async with node.db.connection() as conn:
        found = await history.order(conn, user_id, order_id)
    m = await _market_or_none(node, found.market) if found is not None else None
    if found is None or m is None:
        raise ApiError("UNKNOWN_ORDER", "unknown order")
    return order_to_wire(m, found)


NEXT_CURSOR = "X-Next-Cursor"


def paged(items: list[dict[str, Any]], next_cursor: str | None) -> JSONResponse:
    """A page of history as the list itself; ``X-Next-Cursor``, passed back as
    ``cursor``, continues after its last item (absent on the last page)."""
    return JSONResponse(items, headers={NEXT_CURSOR: next_cursor} if next_cursor else None)


async def _page(query: Awaitable[history.Page[T]]) -> history.Page[T]:
    try:
        return await query
    except ValueError as exc:  # a cursor that is not one of ours
        raise ApiError("INVALID_PARAM", str(exc)) from None


async def orders(
    node: Node,
    user_id: str,
    market_id: str | None,
    status: str,
    limit: int,
    cursor: str | None = None,
) -> JSONResponse:
    await _caught_up(node, market_id)
    async with node.db.connection() as conn:
        page = await _page(
            history.orders(
                conn, user_id, market=market_id, status=status, limit=limit, cursor=cursor
            )
        )
    live = await _live_state(node, user_id, page.items)
    out = []
    for o in page.items:
        m = await _market_or_none(node, o.market)
        if m is not None:
            out.append(order_to_wire(m, live.get((o.market, o.id), o)))
    return paged(out, page.next_cursor)


async def _live_state(
    node: Node, user_id: str, recorded: list[Order]
) -> dict[tuple[str, str], Order]:
    """The live state of the orders recorded as open: PostgreSQL has an order's fills
    only once it is done, Redis has them as they happen. Without Redis, as recorded."""
    wanted = [(o.market, o.id) for o in recorded if o.status in history.OPEN_STATUSES]
    if not wanted:
        return {}
    try:
        live: dict[tuple[str, str], Order] = await node.ex.live_orders(user_id, wanted)
    except (RedisError, OSError):
        return {}
    return live


async def fills(
    node: Node, user_id: str, market_id: str | None, limit: int, cursor: str | None = None
) -> JSONResponse:
    await _caught_up(node, market_id)
    async with node.db.connection() as conn:
        page = await _page(
            history.fills(conn, user_id, market=market_id, limit=limit, cursor=cursor)
        )
    out = []
    for f in page.items:
        m = await _market_or_none(node, f.market)
        if m is None:
            continue
        fee_scale = m.base_scale if f.fee_asset == m.base else m.quote_scale
        out.append(
            {
                "market": f.market,
                "trade_id": f.trade_id,
                "order_id": f.order_id,
                "side": f.side,
                "liquidity": f.liquidity,
                "price": format_price(m, f.price),
                "size": format_size(m, f.size),
                "cost": format_amount(m.quote_scale, f.quote),
                "fee": format_amount(fee_scale, f.fee),
                "fee_asset": f.fee_asset,
                "maker_order_id": f.maker_order_id,
                "taker_order_id": f.taker_order_id,
                "seq": f.seq,
                "ts": f.ts,
            }
        )
    return paged(out, page.next_cursor)


async def recent_trades(node: Node, market_id: str, limit: int) -> list[dict[str, Any]]:
    """A market's latest trades, newest first: the latest from its stream (read in part:
    :func:`~api.marketdata.stream_trades`), the older ones from history (everything the
    stream no longer has, or was not read for, is committed). Without PostgreSQL (no
    connection within :data:`~api.db.BEST_EFFORT_S`), what the stream has."""
    trades, cut = await stream_trades(node.ex, node.redis, market_id, limit)
    if len(trades) >= limit:
        return trades
    before = int(trades[-1]["trade_id"]) if trades else None
    if before == 1:  # the stream still has the market's first trade: nothing is older
        return trades
    m = await service.market(node, market_id)
    try:
        async with node.db.connection(BEST_EFFORT_S) as conn:
            older = await history.trades(
                conn, market_id, limit=limit - len(trades), before_trade_id=before
            )
    except ApiError:
        if cut is None:
            return trades
        rest = await node.ex.scan_trades(market_id, limit - len(trades), before=cut)
        return trades + rest.trades
    return trades + [trade_to_wire(m, t) for t in older]


def trade_to_wire(m: Market, t: history.TradeRecord) -> dict[str, Any]:
    """A recorded trade as the stream's are sent: the fields of its ``trade`` event."""
    event = {
        "tid": t.trade_id,
        "price": t.price,
        "size": t.size,
        "side": t.taker_side,
        "maker": t.maker_order_id,
        "taker": t.taker_order_id,
        "seq": t.seq,
        "ts": t.ts,
    }
    return stream_trade_to_wire(m, event)


async def candles(
    node: Node,
    market: Market,
    interval: str,
    limit: int,
    start: int | None = None,
    end: int | None = None,
) -> list[dict[str, Any]]:
    await _caught_up(node, market.id)
    async with node.db.connection() as conn:
        rows = await history.candles(
            conn, market.id, interval, limit=limit, start_ts=start, end_ts=end
        )
    return [
        {
            "ts": c.start,
            "open": format_price(market, c.open),
            "high": format_price(market, c.high),
            "low": format_price(market, c.low),
            "close": format_price(market, c.close),
            "volume": format_size(market, c.volume),
            "quote_volume": format_amount(market.quote_scale, c.quote_volume),
            "trades": c.trades,
        }
        for c in rows
    ]
