"""Typed calls to the market shard's Lua functions (lua/10_market.lua).

Nothing outside ``engine/`` sees key names or Lua argument order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

import orjson
from redis.exceptions import ResponseError

from engine import keys
from engine.types import BookSnapshot, EngineError, Market, Order, OrderRequest

ERROR_CODES = frozenset(
    {
        "INVALID_PARAM",
        "BAD_PRECISION",
        "UNKNOWN_MARKET",
        "MARKET_NOT_TRADING",
        "INSUFFICIENT_FUNDS",
        "POST_ONLY_WOULD_TAKE",
        "UNKNOWN_ORDER",
        "DUPLICATE_CLIENT_ORDER_ID",
        "FORBIDDEN",
        "ORDER_ID_TAKEN",  # internal: the facade retries with a new id, never answered
    }
)


def engine_error(exc: ResponseError) -> EngineError:
    """Turn a Lua ``fail(CODE, msg)`` reply into an EngineError."""
    text = str(exc)
    code, _, message = text.partition(" ")
    if code in ERROR_CODES:
        return EngineError(code, message)
    return EngineError("INTERNAL", "engine error")


async def fcall(redis: Any, name: str, key: str, *args: Any) -> Any:
    try:
        return await redis.fcall(name, 1, key, *args)
    except ResponseError as exc:
        raise engine_error(exc) from None


def _text(value: Any) -> str:
    return (
        value if type(value) is str else value.decode() if isinstance(value, bytes) else str(value)
    )


@dataclass(slots=True)
class Outcome:
    """What one engine call did: its kind, the events it appended, the order state."""

    kind: str  # new | replay | duplicate
    order_id: str
    status: str
    filled: int
    cost: int
    events: list[dict[str, Any]] = field(default_factory=list)


def _outcome(reply: list[Any]) -> tuple[Outcome, bool]:
    kind, events, status, filled, cost, more, order_id = reply
    if type(kind) is bytes:  # the usual client (no decode_responses)
        kind, status, order_id = kind.decode(), status.decode(), order_id.decode()
    outcome = Outcome(
        kind=_text(kind),
        order_id=_text(order_id),
        status=_text(status),
        filled=int(filled),
        cost=int(cost),
        events=orjson.loads(events),
    )
    return outcome, int(more) == 1


async def configure(
    redis: Any, market: Market, now_ms: int, keep_status: bool = False
) -> list[dict[str, Any]]:
    """Create ``market`` or update its fees/limits/status (``keep_status``: leave an
    existing market's status as it is; a new one starts TRADING); returns the events."""
    fields = {
        "base": market.base,
        "quote": market.quote,
        "bscale": market.base_scale,
        "tick": market.tick,
        "lot": market.lot,
        "min": market.min_size,
        "maxn": market.max_notional,
        "mfee": market.maker_fee_bps,
        "tfee": market.taker_fee_bps,
        "status": market.status,
    }
    if keep_status:
        del fields["status"]
    args: list[Any] = [now_ms]
    for name, value in fields.items():
        args += [name, value]
    reply = await fcall(redis, "mkt_configure", keys.market_cfg(market.id), *args)
    return cast(list[dict[str, Any]], orjson.loads(reply))


async def set_status(redis: Any, market_id: str, status: str, now_ms: int) -> list[dict[str, Any]]:
    reply = await fcall(
        redis, "mkt_configure", keys.market_cfg(market_id), now_ms, "status", status
    )
    return cast(list[dict[str, Any]], orjson.loads(reply))


def place_args(order_id: str, user_id: str, req: OrderRequest, now_ms: int) -> list[Any]:
    return [
        order_id,
        user_id,
        req.side,
        req.type,
        req.time_in_force,
        1 if req.post_only else 0,
        req.price,
        req.amount,
        req.quote_amount,
        req.stp,
        req.client_order_id,
        now_ms,
        "",
    ]


async def place(
    redis: Any,
    order_id: str,
    user_id: str,
    req: OrderRequest,
    now_ms: int,
    max_fills: int | None = None,
) -> Outcome:
    """Place an order; a deep sweep continues over several bounded calls."""
    args = place_args(order_id, user_id, req, now_ms)
    if max_fills:
        args[-1] = max_fills
    reply = await fcall(redis, "mkt_place", keys.market_cfg(req.market), *args)
    outcome, more = _outcome(reply)
    while more:
        reply = await fcall(
            redis,
            "mkt_continue",
            keys.market_cfg(req.market),
            order_id,
            now_ms,
            max_fills or "",
        )
        step, more = _outcome(reply)
        step.events = outcome.events + step.events
        outcome = step
    return outcome


async def cancel(redis: Any, market_id: str, order_id: str, user_id: str, now_ms: int) -> Outcome:
    reply = await fcall(redis, "mkt_cancel", keys.market_cfg(market_id), order_id, user_id, now_ms)
    return _outcome(reply)[0]


async def cancel_and_read(
    redis: Any, market_id: str, order_id: str, user_id: str, now_ms: int
) -> tuple[Outcome, Order | None]:
    """:func:`cancel`, then the order record after it, in one round trip (same shard,
    so the read sees the cancel)."""
    return await _call_and_read(redis, market_id, order_id, "mkt_cancel", user_id, now_ms)


async def reduce_and_read(
    redis: Any, market_id: str, order_id: str, user_id: str, new_amount: int, now_ms: int
) -> tuple[Outcome, Order | None]:
    """:func:`reduce`, then the order record after it, in one round trip."""
    return await _call_and_read(
        redis, market_id, order_id, "mkt_reduce", user_id, new_amount, now_ms
    )


async def _call_and_read(
    redis: Any, market_id: str, order_id: str, fn: str, *args: Any
) -> tuple[Outcome, Order | None]:
    pipe = redis.pipeline(transaction=False)
    pipe.fcall(fn, 1, keys.market_cfg(market_id), order_id, *args)
    pipe.hgetall(keys.market_order(market_id, order_id))
    reply, raw = await pipe.execute(raise_on_error=False)
    if isinstance(reply, ResponseError):
        raise engine_error(reply)
    if isinstance(reply, Exception):
        raise reply
    if isinstance(raw, Exception):
        raise raw
    order = (
        order_from_record(market_id, {_text(k): _text(v) for k, v in raw.items()}) if raw else None
    )
    return _outcome(reply)[0], order


async def cancel_many(
    redis: Any, market_id: str, user_id: str, order_ids: list[str], now_ms: int
) -> tuple[list[dict[str, Any]], list[str]]:
    """Cancel those of ``order_ids`` that are open and ``user_id``'s."""
    reply = await fcall(
        redis, "mkt_cancel_many", keys.market_cfg(market_id), user_id, now_ms, *order_ids
    )
    return orjson.loads(reply[0]), [_text(x) for x in reply[1:]]


async def reduce(
    redis: Any, market_id: str, order_id: str, user_id: str, new_amount: int, now_ms: int
) -> Outcome:
    reply = await fcall(
        redis, "mkt_reduce", keys.market_cfg(market_id), order_id, user_id, new_amount, now_ms
    )
    return _outcome(reply)[0]


async def tombstone(redis: Any, market_id: str, order_id: str, now_ms: int) -> bool:
    """Make ``order_id`` unplaceable if the market never saw it; True if so."""
    reply = await fcall(redis, "mkt_tombstone", keys.market_cfg(market_id), order_id, now_ms)
    return int(reply) == 1


async def depth(redis: Any, market_id: str, levels: int) -> BookSnapshot:
    """L2 book with its seq, read atomically."""
    try:
        reply = await redis.fcall_ro("mkt_depth", 1, keys.market_cfg(market_id), levels)
    except ResponseError as exc:
        raise engine_error(exc) from None
    seq, bids, asks = reply

    def pairs(flat: list[Any]) -> list[tuple[int, int]]:
        return [(int(flat[i]), int(flat[i + 1])) for i in range(0, len(flat), 2)]

    return BookSnapshot(market=market_id, seq=int(seq), bids=pairs(bids), asks=pairs(asks))


async def get_order(redis: Any, market_id: str, order_id: str) -> Order | None:
    """The order record, or None (unknown, expired or a reconciler tombstone)."""
    raw = await redis.hgetall(keys.market_order(market_id, order_id))
    if not raw:
        return None
    return order_from_record(market_id, {_text(k): _text(v) for k, v in raw.items()})


def order_from_record(market_id: str, rec: dict[str, str]) -> Order | None:
    """An ``Order`` from the fields of its record (docs/internals.md), or None."""
    if rec.get("status") == "ABORTED":
        return None
    packed = rec.get("d")
    if packed is not None:
        # d = id|cid|side|type|tif|po|stp|price|qb|ts|mem (mem last: it contains a "|")
        oid, cid, side, type_, tif, po, _stp, price, qb, ts, _mem = packed.split("|", 10)
    elif "side" in rec:  # a record of the former one-field-per-attribute layout
        oid, cid, side, type_ = rec["id"], rec.get("cid", ""), rec["side"], rec["type"]
        tif, po, price, qb, ts = rec["tif"], rec["po"], rec["price"], rec.get("qb", "0"), rec["ts"]
    else:
        return None
    return Order(
        id=oid,
        user_id=rec["u"],
        market=market_id,
        side=side,  # type: ignore[arg-type]
        type=type_,  # type: ignore[arg-type]
        time_in_force=tif,  # type: ignore[arg-type]
        post_only=po == "1",
        price=int(price),
        amount=int(rec["amount"]),
        filled=int(rec["filled"]),
        cost=int(rec["cost"]),
        status=rec["status"],  # type: ignore[arg-type]
        created_ts=int(ts),
        updated_ts=int(rec["uts"]),
        client_order_id=cid,
        quote_amount=int(qb),
    )


async def read_config(redis: Any, market_id: str) -> dict[str, str] | None:
    raw = await redis.hgetall(keys.market_cfg(market_id))
    if not raw:
        return None
    return {_text(k): _text(v) for k, v in raw.items()}
